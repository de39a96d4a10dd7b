"""ovsnet: one flat, optionally encrypted network for Docker containers over Open vSwitch.

How the code is arranged: docs/architecture.md; facts, decisions, security, tests: docs/.
"""

__version__ = "0.1.0"
