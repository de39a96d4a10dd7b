"""The lab's pure parts: layout (names, addresses, paths), image tar, state file, demo verdict."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovsnet.errors import InvalidInput, NotReady
from ovsnet.lab import image, ovs, state
from ovsnet.lab.demo import DemoResult, Ping, Step
from ovsnet.lab.layout import MAX_HOSTS, host_subnet, lab_layout


def test_three_host_layout_matches_the_documented_addresses():
    layout = lab_layout("demo", "abc123", 3, Path("/run/ovsnet-lab"))
    h1, h2, h3 = layout.hosts
    assert [h.name for h in layout.hosts] == ["h1", "h2", "h3"]
    assert [h.underlay_ip for h in layout.hosts] == [
        "198.51.100.11",
        "198.51.100.12",
        "198.51.100.13",
    ]
    assert str(h1.underlay) == "198.51.100.11/24"
    assert [h.prefix for h in layout.hosts] == ["10.0.1", "10.0.2", "10.0.3"]
    assert h2.docker_flags() == ["--bip=10.0.2.1/8", "--fixed-cidr=10.0.2.0/24", "--mtu=1462"]
    assert h3.db == "unix:/run/ovsnet-lab/demo/h3/db.sock"
    assert h3.docker_host == "unix:///run/ovsnet-lab/demo/h3/docker/docker.sock"
    assert layout.switch_netns == "ovl-abc123-sw"
    assert h1.netns == "ovl-abc123-h1"
    assert layout.state_file == Path("/run/ovsnet-lab/demo/state.json")


@given(st.integers(min_value=1, max_value=MAX_HOSTS))
def test_every_host_gets_its_own_subnet_and_underlay_address(hosts):
    layout = lab_layout("x", "000000", hosts)
    subnets = [h.addressing.subnet for h in layout.hosts]
    assert len(set(subnets)) == hosts
    assert all(s.subnet_of(IPv4Network("10.0.0.0/8")) and s.prefixlen == 24 for s in subnets)
    assert len({h.underlay_ip for h in layout.hosts}) == hosts
    assert all(h.underlay in IPv4Network("198.51.100.0/24") for h in layout.hosts)
    assert len({h.netns for h in layout.hosts} | {layout.switch_netns}) == hosts + 1


def test_host_subnet_counts_from_the_supernet():
    assert host_subnet(IPv4Network("10.0.0.0/8"), 1) == IPv4Network("10.0.1.0/24")
    assert host_subnet(IPv4Network("10.0.0.0/8"), 40) == IPv4Network("10.0.40.0/24")


@pytest.mark.parametrize("hosts", [0, -1, MAX_HOSTS + 1])
def test_host_count_out_of_range_is_refused(hosts):
    with pytest.raises(InvalidInput, match="hosts"):
        lab_layout("x", "000000", hosts)


@pytest.mark.parametrize("name", ["", "Upper", "with space", "-lead", "a" * 25, "x/y", "é"])
def test_bad_lab_names_are_refused(name):
    with pytest.raises(InvalidInput, match="lab name"):
        lab_layout(name, "000000", 1)


def test_a_workdir_too_deep_for_unix_sockets_is_refused():
    with pytest.raises(InvalidInput, match="too deep"):
        lab_layout("x", "000000", 1, Path("/tmp") / ("d" * 80))


def test_image_tar_holds_busybox_and_its_applets():
    data = image.build_tar(b"\x7fELF static", ["sh", "ping", "busybox", "sleep"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("bin/busybox").read() == b"\x7fELF static"
    assert members["bin/busybox"].mode == 0o755
    for applet in ("sh", "ping", "sleep"):
        assert members[f"bin/{applet}"].issym()
        assert members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    assert "etc/passwd" in members


def test_a_dynamic_busybox_is_refused(tmp_path):
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF....../lib64/ld-linux-x86-64.so.2....")
    image.rootfs_tar.cache_clear()
    try:
        with pytest.raises(NotReady, match="not statically linked"):
            image.rootfs_tar(fake)
    finally:
        image.rootfs_tar.cache_clear()


def test_system_ids_are_what_ovs_ctl_records():
    host = lab_layout("x", "000000", 2).hosts[1]
    ids = ovs.system_ids(host, "3.1.0", "8.3.1", {"ID": "debian", "VERSION_ID": "12"})
    assert "ovs_version=3.1.0" in ids
    assert "db_version=8.3.1" in ids
    assert 'system_type="debian"' in ids and 'system_version="12"' in ids
    assert 'external_ids:hostname="h2"' in ids
    assert any(i.startswith("external_ids:system-id=") for i in ids)


def test_os_release_parsing(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert ovs.os_release(release)["VERSION_ID"] == "12"
    assert ovs.os_release(tmp_path / "missing") == {}


@pytest.fixture
def short_tmp():
    """A temporary base directory short enough for Unix socket paths (pytest's are not)."""
    path = Path(tempfile.mkdtemp(prefix="lt-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_state_survives_a_round_trip(short_tmp):
    tmp_path = short_tmp
    original = state.LabState(
        name="roundtrip",
        token="abcdef",
        hosts=2,
        docker=True,
        base_dir=str(tmp_path),
        owner=state.Owner(pid=42, start=7),
        dockerd_pids={"h1": 100},
    )
    original.layout().directory.mkdir()
    state.save(original)
    loaded = state.load("roundtrip", tmp_path)
    assert loaded == original
    assert [s.name for s in state.list_states(tmp_path)] == ["roundtrip"]


def test_missing_lab_is_not_ready(tmp_path):
    with pytest.raises(NotReady, match="no lab named 'nope'"):
        state.load("nope", tmp_path)


def test_name_resolution_prefers_flag_then_env_then_the_only_kept_lab(short_tmp, monkeypatch):
    tmp_path = short_tmp
    monkeypatch.delenv(state.NAME_ENV, raising=False)
    with pytest.raises(NotReady, match="no lab is up"):
        state.resolve_name(None, tmp_path)
    for name, owner in (("kept", None), ("test", state.Owner(pid=1, start=1))):
        lab = state.LabState(
            name=name, token="000000", hosts=1, docker=False, base_dir=str(tmp_path), owner=owner
        )
        lab.layout().directory.mkdir()
        state.save(lab)
    assert state.resolve_name(None, tmp_path) == "kept"  # a test's lab is never a default
    assert state.resolve_name("test", tmp_path) == "test"
    monkeypatch.setenv(state.NAME_ENV, "from-env")
    assert state.resolve_name(None, tmp_path) == "from-env"
    monkeypatch.delenv(state.NAME_ENV)
    second = state.LabState(
        name="kept2", token="000001", hosts=1, docker=False, base_dir=str(tmp_path)
    )
    second.layout().directory.mkdir()
    state.save(second)
    with pytest.raises(InvalidInput, match="several labs"):
        state.resolve_name(None, tmp_path)


def test_demo_verdict_needs_every_step_and_every_ping():
    ok_ping = Ping("h1", "10.0.1.2", "h2", "10.0.2.2", True)
    result = DemoResult(lab="d", steps=[Step("h1", "ovsnet init", 0, "")], pings=[ok_ping])
    assert result.ok
    assert not DemoResult(lab="d", pings=[]).ok  # no ping is no proof
    failed = DemoResult(lab="d", pings=[ok_ping, Ping("h2", "a", "h1", "b", False)])
    assert not failed.ok
    assert not DemoResult(lab="d", steps=[Step("h1", "x", 3, "")], pings=[ok_ping]).ok
    assert DemoResult(lab="d", pings=[ok_ping]).as_json()["ok"] is True


def test_ping_counts_replies_from_the_summary_of_busybox_and_iputils():
    from ovsnet.lab.container import answered

    busybox = "3 packets transmitted, 1 packets received, 66% packet loss\n"
    iputils = "3 packets transmitted, 3 received, 0% packet loss, time 402ms\n"
    assert answered(busybox) == 1
    assert answered(iputils) == 3
    assert answered("ping: bad address 'x'") == 0
