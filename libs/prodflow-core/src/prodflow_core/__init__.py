"""prodflow-core: the small library every prodflow service stands on."""

__version__ = "0.1.0"
