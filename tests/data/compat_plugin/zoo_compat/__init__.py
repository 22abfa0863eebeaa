"""zoo-compat: a plugin frozen as written to zoo's plugin guide of 2026-12-01 (never edit; see README.md)."""

__version__ = "0.1.0"
