"""HTTP routes of monitor, one module per resource."""
