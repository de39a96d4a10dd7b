"""ovsnet: one flat, optionally encrypted network for Docker containers over Open vSwitch."""

__version__ = "0.1.0"
