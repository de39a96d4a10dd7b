"""`python -m ovsnet`: the CLI edge (docs/architecture.md, "Layers")."""

from ovsnet.cli import main

main()
