"""HTTP routes of submitter, one module per resource."""
