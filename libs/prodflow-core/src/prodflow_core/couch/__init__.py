"""An async CouchDB client over httpx, coded to the CouchDB 3 API."""

from prodflow_core.couch.changes import Change, ChangesFollower
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.database import BulkResult, CouchDatabase, ViewResult, rev_number
from prodflow_core.couch.design import DesignDocument, View, drop_design_documents, sync_design_documents
from prodflow_core.couch.errors import CouchError, DocumentConflict, DocumentNotFound
from prodflow_core.couch.own_writes import OwnWrites

__all__ = [
    "BulkResult",
    "Change",
    "ChangesFollower",
    "CouchClient",
    "CouchDatabase",
    "CouchError",
    "DesignDocument",
    "DocumentConflict",
    "DocumentNotFound",
    "OwnWrites",
    "View",
    "ViewResult",
    "drop_design_documents",
    "rev_number",
    "sync_design_documents",
]
