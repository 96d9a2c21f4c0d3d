"""prodflow gateway."""
