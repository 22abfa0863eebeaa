"""zoo-toy: the smallest plugin packaged with pyproject.toml alone (see docs/plugin-guide.md)."""
