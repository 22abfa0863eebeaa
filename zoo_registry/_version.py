"""zoo's version (one place; the package and the card checks read it)."""

__version__ = "0.1.0"
