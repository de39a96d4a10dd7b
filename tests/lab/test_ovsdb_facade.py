"""The OVSDB facade against real ovsdb-servers."""

import pytest

from ovsnet.ovsdb import OvsDb

pytestmark = pytest.mark.lab


def test_two_databases_in_one_process_stay_apart(lab_factory):
    """ovsdbapp shares its first connection class-wide; each OvsDb must keep its own."""
    lab = lab_factory(hosts=2, docker=False)
    one, two = lab.hosts
    one.vsctl("add-br", "only-on-h1", "--", "set", "bridge", "only-on-h1", "datapath_type=netdev")
    with OvsDb(one.db) as first, OvsDb(two.db) as second:
        assert "only-on-h1" in first.bridge_names()
        assert "only-on-h1" not in second.bridge_names()
        assert second.bridge("only-on-h1") is None
