"""Service functions: one per command, returning results (never printing)."""
