"""HTTP routes of request-api, one module per resource."""
