"""The ``prodflow`` commands, one module per resource."""
