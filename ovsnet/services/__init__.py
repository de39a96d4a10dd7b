"""Service functions: one per command, returning results (never printing).

Place: docs/architecture.md, "Packages and what they own": the services layer.
"""
