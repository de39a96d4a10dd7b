"""Recognise the command lines a fleet runs every few seconds, so they can skip typer and click.

`ovsnet [--db DB] [--json] status [--bridge B] [--check] [--check-peers]` and
`ovsnet [--db DB] [--json] peer sync FILE [--bridge B]`, spelled only with these options, are
run by ovsnet.cli.hot_commands with the very bodies the typer commands call. Anything else
(help, another option, a repeated option, an option after FILE, the SSL options or their
environment variables, a completion request) returns None and goes through typer, which then
also words every usage error. Pure: argv and the environment in, a decision out.

NOTE(perf): importing typer and click is ~0.05 s of CPU, about a quarter of `status` at
1,000 peers and the difference between 2.3x and under 2x `ovs-vsctl list Interface`
(README, "Reads beside OVS's own tool").

Place: docs/architecture.md, "Packages and what they own": the CLI edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ovsnet.model import DEFAULT_BRIDGE

DEFAULT_DB = "unix:/var/run/openvswitch/db.sock"  # --db's default (ovsnet.cli.app uses it)
# Environment the global options read that the fast path does not handle: typer does.
_TYPER_ONLY_ENV = (
    "_OVSNET_COMPLETE",
    "OVSNET_DB_SSL_KEY",
    "OVSNET_DB_SSL_CERT",
    "OVSNET_DB_SSL_CA",
)


@dataclass(frozen=True)
class FastCommand:
    """One recognised command line: which command, its global options and its own."""

    command: str  # "status" or "peer sync"
    db: str
    json: bool = False
    bridge: str = DEFAULT_BRIDGE
    check: bool = False
    check_peers: bool = False
    peers_file: str | None = None


def recognise(argv: Sequence[str], environ: Mapping[str, str]) -> FastCommand | None:
    """The fast command argv names, or None when typer must parse it."""
    if any(name in environ for name in _TYPER_ONLY_ENV):
        return None
    args = list(argv)
    db, json_output = None, False
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--json" and not json_output:
            json_output = True
        elif option == "--db" and db is None and args:
            db = args.pop(0)
        elif option.startswith("--db=") and db is None:
            db = option[len("--db=") :]
        else:
            return None
    if db is None:
        db = environ.get("OVSNET_DB")
    settings = {"db": db or DEFAULT_DB, "json": json_output}
    if args[:1] == ["status"]:
        return _status(args[1:], settings)
    if args[:2] == ["peer", "sync"]:
        return _peer_sync(args[2:], settings)
    return None


def _status(args: list[str], settings: dict) -> FastCommand | None:
    flags: dict = {}
    while args:
        option = args.pop(0)
        if option in ("--check", "--check-peers"):
            key = option[2:].replace("-", "_")
            if key in flags:
                return None
            flags[key] = True
        elif not _take_bridge(option, args, flags):
            return None
    return FastCommand("status", **settings, **flags)


def _peer_sync(args: list[str], settings: dict) -> FastCommand | None:
    flags: dict = {}
    while args and args[0].startswith("--"):
        if not _take_bridge(args.pop(0), args, flags):
            return None
    if len(args) != 1 or (args[0].startswith("-") and args[0] != "-"):
        return None  # no FILE, more than one, or options after it: typer's to word or take
    return FastCommand("peer sync", **settings, **flags, peers_file=args[0])


def _take_bridge(option: str, rest: list[str], flags: dict) -> bool:
    """Consume `--bridge B` or `--bridge=B` into flags; False for anything else (or twice)."""
    if "bridge" in flags:
        return False
    if option == "--bridge" and rest and not rest[0].startswith("-"):
        flags["bridge"] = rest.pop(0)
        return True
    if option.startswith("--bridge="):
        flags["bridge"] = option[len("--bridge=") :]
        return True
    return False
