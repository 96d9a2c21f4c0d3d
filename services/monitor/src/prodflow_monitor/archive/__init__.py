"""Archival of finished labels: their job documents and events moved to the label's storage element, and back.

:mod:`~prodflow_monitor.archive.files` writes and reads the archive files, :mod:`~prodflow_monitor.archive.tables`
keeps the state of each archived label and the index of its jobs in the monitor's SQL database,
:mod:`~prodflow_monitor.archive.operation` archives and restores, :mod:`~prodflow_monitor.archive.reads` answers
the label's reads (jobs, listings, .exactly, grab manifest, verification) while it is archived.
"""
