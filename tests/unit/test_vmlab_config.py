"""Pure parts of the real-kernel VM lab: cache key, addresses, boot line, packet classifier."""

from __future__ import annotations

from ipaddress import IPv4Address

from ovsnet.vmlab import config
from ovsnet.vmlab.capture import classify, count_lines
from ovsnet.vmlab.config import VmSpec

DEPS = ["ovsdbapp>=2.4", "ovs>=3.1"]


def test_image_key_changes_with_each_baked_in_input_and_nothing_else():
    key = config.image_key(("a", "b"), "ssh-ed25519 AAA")
    assert key == config.image_key(("b", "a"), "ssh-ed25519 AAA\n")
    assert key != config.image_key(("a", "b", "c"), "ssh-ed25519 AAA")
    assert key != config.image_key(("a", "b"), "ssh-ed25519 BBB")


def test_wheelhouse_key_follows_the_dependency_list_not_its_order():
    assert config.wheelhouse_key(DEPS) == config.wheelhouse_key(list(reversed(DEPS)))
    assert config.wheelhouse_key(DEPS) != config.wheelhouse_key([*DEPS, "rich"])


def test_python_dependencies_come_from_pyproject():
    text = '[project]\nname = "x"\ndependencies = ["ovs>=3.1", "rich>=13"]\n'
    assert config.python_dependencies(text) == ["ovs>=3.1", "rich>=13"]


def test_debian_mirror_from_deb822_and_one_line_sources():
    deb822 = (
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://sec.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert config.debian_mirror([deb822]) == "http://mirror.example/debian"
    one_line = "deb [arch=amd64] http://other.example/debian bookworm main\n"
    assert config.debian_mirror(["deb http://x/ubuntu jammy main\n", one_line]) == (
        "http://other.example/debian"
    )
    assert config.debian_mirror([]) == config.DEFAULT_MIRROR


def test_vm_addresses_are_test_net_and_macs_unique_per_lab_and_vm():
    specs = [VmSpec(index=i, lab_id=lab) for lab in ("0a1b2c", "ffee00") for i in (1, 2, 3)]
    assert {s.mac for s in specs}.__len__() == 6
    assert all(IPv4Address(s.underlay_ip) in config.UNDERLAY for s in specs)
    assert VmSpec(index=2, lab_id="0a1b2c").underlay_ip == "198.51.100.12"
    assert str(config.host_side_address()) == "198.51.100.254/24"


def test_kernel_cmdline_gives_each_vm_its_address_and_name():
    line = config.kernel_cmdline(VmSpec(index=3, lab_id="abcdef"))
    assert "ip=198.51.100.13::198.51.100.254:255.255.255.0:vm3:eth0:off" in line.split()
    assert "systemd.hostname=vm3" in line.split()
    assert "root=/dev/vda" in line.split()


def test_qemu_runs_software_emulation_with_small_translation_buffer(tmp_path):
    paths = config.QemuPaths(*(tmp_path / n for n in ("k", "i", "d", "p", "c", "m")))
    argv = config.qemu_argv(VmSpec(index=1, lab_id="abcdef"), paths, memory_mib=768)
    assert argv[argv.index("-accel") + 1] == "tcg,tb-size=256"
    assert argv[argv.index("-m") + 1] == "768"
    assert "-daemonize" in argv and str(paths.pidfile) in argv
    assert not any("readonly=on" in arg for arg in argv)
    layered = config.QemuPaths(*(tmp_path / n for n in ("k", "i", "d", "p", "c", "m", "l")))
    with_layer = config.qemu_argv(VmSpec(index=1, lab_id="abcdef"), layered)
    assert f"file={tmp_path / 'l'},if=virtio,format=raw,readonly=on" in with_layer
    # The root disk comes first, so it stays /dev/vda.
    drives = [with_layer[i + 1] for i, arg in enumerate(with_layer) if arg == "-drive"]
    assert drives[0].startswith(f"file={tmp_path / 'd'},")


GRE_ICMP = (
    "10:00:00.000001 tap1  In  IP 198.51.100.11 > 198.51.100.12: GREv0, length 102: "
    "IP 10.0.1.2 > 10.0.2.2: ICMP echo request, id 5, seq 1, length 64"
)
GRE_TCP = (
    "10:00:00.000002 tap2  In  IP 198.51.100.12 > 198.51.100.11: GREv0, length 1500: "
    "IP 10.0.2.2.80 > 10.0.1.2.40000: Flags [.], seq 1:1449, ack 1, win 502, length 1448"
)
ESP = (
    "10:00:00.000003 tap1  In  IP 198.51.100.11 > 198.51.100.12: "
    "ESP(spi=0xc1a2b3c4,seq=0x1), length 140"
)
NATT_ESP = (
    "10:00 tap1 In IP 198.51.100.11.4500 > 198.51.100.12.4500: UDP-encap: ESP(spi=0x1,seq=0x2)"
)
IKE = (
    "10:00:00.000004 tap1  In  IP 198.51.100.11.500 > 198.51.100.12.500: "
    "isakmp: parent_sa ikev2_init[I]"
)
ICMP = "10:00 tap1 In IP 198.51.100.11 > 198.51.100.12: ICMP echo request, id 1, seq 1, length 64"
GRE_ICMP6 = (
    "10:00:00.000005 tap1  In  IP 198.51.100.11 > 198.51.100.12: GREv0, length 74: "
    "IP6 fe80::42:aff:fe00:102 > ff02::2: ICMP6, router solicitation, length 16"
)
ARP = "10:00 tap1 In ARP, Request who-has 198.51.100.12 tell 198.51.100.11, length 28"


def test_classify_outer_protocols_and_plaintext_inside_gre():
    assert classify(GRE_ICMP) == ("gre", "icmp")
    assert classify(GRE_TCP) == ("gre", "tcp")
    assert classify(GRE_ICMP6) == ("gre", "icmp6")
    assert classify(ESP) == ("esp", None)
    assert classify(NATT_ESP) == ("esp", None)
    assert classify(IKE) == ("ike", None)
    assert classify(ICMP) == ("icmp", None)
    assert classify(ARP) == ("arp", None)
    assert classify("10:00 tap1 In IP 198.51.100.11.5353 > 224.0.0.251.5353: UDP") == (
        "other",
        None,
    )


def test_count_lines_adds_up_per_category():
    counts = count_lines([GRE_ICMP, GRE_ICMP, GRE_TCP, GRE_ICMP6, ESP, IKE, ICMP, ARP, ""])
    assert counts.as_dict() == {
        "gre": 4, "esp": 1, "ike": 1, "icmp": 1, "vxlan": 0, "geneve": 0, "arp": 1, "other": 0,
        "inner_icmp": 2, "inner_icmp6": 1, "inner_tcp": 1,
    }  # fmt: skip
    assert counts["gre"] == 4
    assert counts.readable == [GRE_ICMP, GRE_ICMP, GRE_TCP, GRE_ICMP6]
    assert GRE_ICMP6 in counts.explain()


def test_counts_per_pair_of_hosts_ignore_ports_and_inner_addresses():
    counts = count_lines([GRE_ICMP, GRE_TCP, ESP, NATT_ESP, IKE, ARP])
    assert counts.between("198.51.100.11", "198.51.100.12", "gre") == 2
    assert counts.between("198.51.100.12", "198.51.100.11", "esp") == 2
    assert counts.between("198.51.100.11", "198.51.100.12", "ike") == 1
    assert counts.between("198.51.100.11", "198.51.100.13", "gre") == 0
    assert counts.between("10.0.1.2", "10.0.2.2", "gre") == 0
