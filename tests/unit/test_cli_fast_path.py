"""The fast path (ovsnet.cli.fast) runs `status` and `peer sync` without typer: it must take
exactly the command lines it can run as typer would, and leave every other one to typer.

The equivalence tests replace the two command bodies with recorders (a fake: the bodies'
own work is covered by the lab tests through the CLI), run a command line through typer and
through the fast path, and compare what each body was called with, the exit code and stderr.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovsnet import cli
from ovsnet.cli import fast, hot_commands, peer_commands
from ovsnet.cli.fast import DEFAULT_DB, FastCommand, recognise
from ovsnet.cli.output import Settings

# -- what is recognised -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status"], FastCommand("status", DEFAULT_DB)),
        (["--json", "status"], FastCommand("status", DEFAULT_DB, json=True)),
        (
            ["--db", "unix:/x.sock", "--json", "status", "--check"],
            FastCommand("status", "unix:/x.sock", json=True, check=True),
        ),
        (
            ["--db=tcp:192.0.2.1:6640", "status", "--bridge", "br1", "--check-peers"],
            FastCommand("status", "tcp:192.0.2.1:6640", bridge="br1", check_peers=True),
        ),
        (
            ["--json", "peer", "sync", "peers.txt"],
            FastCommand("peer sync", DEFAULT_DB, json=True, peers_file="peers.txt"),
        ),
        (
            ["peer", "sync", "--bridge=br9", "-"],
            FastCommand("peer sync", DEFAULT_DB, bridge="br9", peers_file="-"),
        ),
    ],
)
def test_recognises_the_plain_read_command_lines(argv, expected):
    assert recognise(argv, {}) == expected


def test_db_comes_from_the_option_then_the_environment_then_the_default():
    assert recognise(["status"], {"OVSNET_DB": "unix:/env.sock"}).db == "unix:/env.sock"
    assert recognise(["--db", "unix:/opt", "status"], {"OVSNET_DB": "unix:/env"}).db == "unix:/opt"
    assert recognise(["status"], {"OVSNET_DB": ""}).db == DEFAULT_DB


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["status", "--help"],
        ["status", "--json"],  # a global option after the command: typer's usage error
        ["--lock-wait", "3", "status"],
        ["--json", "--json", "status"],
        ["--db", "a", "--db", "b", "status"],
        ["status", "--check", "--check"],
        ["status", "--bridge", "a", "--bridge", "b"],
        ["status", "extra"],
        ["--db"],
        ["peer", "sync"],
        ["peer", "sync", "a", "b"],
        ["peer", "sync", "a", "--bridge", "br1"],
        ["peer", "sync", "--dry-run", "a"],
        ["peer", "sync", "--ipsec", "a"],
        ["peer", "list"],
        ["init"],
    ],
)
def test_leaves_everything_else_to_typer(argv):
    assert recognise(argv, {}) is None


@pytest.mark.parametrize(
    "variable", ["_OVSNET_COMPLETE", "OVSNET_DB_SSL_KEY", "OVSNET_DB_SSL_CERT", "OVSNET_DB_SSL_CA"]
)
def test_environment_typer_reads_sends_the_command_to_typer(variable):
    assert recognise(["status"], {variable: "x"}) is None


# -- the same as typer ------------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch):
    """The bodies of status and peer sync replaced by recorders of their (bound) arguments."""
    calls: list[tuple] = []

    def recorder(real):
        signature = inspect.signature(real)

        def record(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            if "peers_file" in values:
                values["peers_file"] = Path(values["peers_file"])
            calls.append((real.__name__, values))

        return record

    status, sync = recorder(hot_commands.show_status), recorder(hot_commands.sync_peers)
    monkeypatch.setattr(hot_commands, "show_status", status)
    monkeypatch.setattr(hot_commands, "sync_peers", sync)
    monkeypatch.setattr(peer_commands, "sync_peers", sync)
    for name in ("OVSNET_DB", *fast._TYPER_ONLY_ENV):
        monkeypatch.delenv(name, raising=False)
    return calls


def _both_ways(argv: list[str], calls: list, capsys) -> tuple[tuple, tuple]:
    command = recognise(argv, {})
    assert command is not None
    outcomes = []
    for run in (lambda: cli._run_typer(argv), lambda: cli._run_fast(argv, command)):
        calls.clear()
        code = run()
        outcomes.append((code, capsys.readouterr().err, list(calls)))
    return outcomes[0], outcomes[1]


def test_status_fake_bodies_called_alike(recorded, capsys):
    typer_way, fast_way = _both_ways(
        ["--db", "unix:/x", "--json", "status", "--bridge=br7", "--check"], recorded, capsys
    )
    assert typer_way == fast_way
    assert fast_way[2] == [
        (
            "show_status",
            {
                "settings": Settings(db="unix:/x", json=True),
                "bridge": "br7",
                "check": True,
                "check_peers": False,
            },
        )
    ]


def test_peer_sync_fake_bodies_called_alike(recorded, capsys):
    typer_way, fast_way = _both_ways(["peer", "sync", "peers.txt"], recorded, capsys)
    assert typer_way == fast_way
    assert fast_way[2][0][1]["peers_file"] == Path("peers.txt")
    assert fast_way[2][0][1]["ipsec"] is None


def test_bad_bridge_refused_alike_fake_bodies(recorded, capsys):
    typer_way, fast_way = _both_ways(["status", "--bridge", "a/b"], recorded, capsys)
    assert typer_way == fast_way
    assert typer_way[0] == 2 and typer_way[2] == []


GLOBAL_TOKENS = ["--json", "--db", "--db=unix:/a.sock", "unix:/b.sock", "--lock-wait", "--help"]
COMMANDS = [["status"], ["peer", "sync"], ["peer"], ["init"], []]
TAIL_TOKENS = [
    "peers.txt",
    "-",
    "--bridge",
    "--bridge=br2",
    "br1",
    "a/b",
    "--check",
    "--check-peers",
    "--dry-run",
    "--json",
    "",
]
command_lines = st.builds(
    lambda head, command, tail: head + command + tail,
    st.lists(st.sampled_from(GLOBAL_TOKENS), max_size=3),
    st.sampled_from(COMMANDS),
    st.lists(st.sampled_from(TAIL_TOKENS), max_size=4),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(command_lines)
def test_any_command_line_taken_is_run_as_typer_runs_it_fake_bodies(recorded, capsys, argv):
    """Property: whenever the fast path takes a command line, typer would have called the same
    body with the same arguments (or refused it with the same exit code and message)."""
    if recognise(argv, {}) is None:
        return
    typer_way, fast_way = _both_ways(argv, recorded, capsys)
    assert typer_way == fast_way


# -- the flow read started early (openflow.FlowRead) -----------------------------------------


def test_a_flow_read_without_ovs_ofctl_fails_when_taken_as_read_flows_does(monkeypatch):
    from ovsnet.errors import NotReady
    from ovsnet.openflow import FlowRead, read_flows

    monkeypatch.setenv("PATH", "/nonexistent")
    reading = FlowRead("unix:/run/x/db.sock", "br0")  # starting never raises
    with pytest.raises(NotReady) as early:
        reading.flows()
    with pytest.raises(NotReady) as plain:
        read_flows("unix:/run/x/db.sock", "br0")
    assert str(early.value) == str(plain.value)
    assert "ovs-ofctl not found" in str(early.value)
    reading.close()  # nothing started: nothing to end
