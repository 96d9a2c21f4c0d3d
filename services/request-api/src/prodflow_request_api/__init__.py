"""prodflow request-api: Production requests, approval, jobs.json and the module & run catalog."""
