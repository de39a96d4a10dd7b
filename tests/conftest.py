"""Shared test setup: the lab fixtures (lab_factory, lab3) come from ovsnet's own plugin."""

import pytest

pytest_plugins = ["ovsnet.lab.pytest_plugin"]

# The first VM test also pays for a cold image build (~3 min) and the boot (~1.5 min); the IPsec
# scenario may wait for IKE and run `ipsec repair` twice (up to ~10 min). The suite-wide limit
# (pyproject.toml, 900 s) is too short for that; an explicit timeout marker still wins.
VM_TEST_TIMEOUT = 2400


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("vm") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(VM_TEST_TIMEOUT))
