"""Shared test setup: the lab fixtures (lab_factory, lab3) come from ovsnet's own plugin."""

pytest_plugins = ["ovsnet.lab.pytest_plugin"]
