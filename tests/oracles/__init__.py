"""Scripts that produce reference data with other projects' code (run outside CI; see each module)."""
