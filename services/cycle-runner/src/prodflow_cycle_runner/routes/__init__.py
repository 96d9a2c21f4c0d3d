"""HTTP routes of cycle-runner, one module per resource."""
