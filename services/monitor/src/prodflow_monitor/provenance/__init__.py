"""Provenance of job outputs: the record of each registered output, the one-call chain, the RO-Crate of a label."""
