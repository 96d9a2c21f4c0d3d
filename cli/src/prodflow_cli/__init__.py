"""The prodflow command line."""
