"""The CLI's options vocabulary: every option that more than one command accepts is defined
here once, as an `Annotated` alias, so it is spelled, checked, documented and read from the
environment the same way everywhere (tests/unit/test_cli_options_vocabulary.py holds commands
to it). A command writes `dry_run: DryRun = False`; the default stays in its signature."""

from __future__ import annotations

from typing import Annotated

import typer

from ovsnet.validate import check_interface_name


def interface_name_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None):
    """Refuse a name Linux cannot use before the command touches anything (exit 2)."""
    if value is None or ctx.resilient_parsing:
        return value
    return check_interface_name(value, f"--{param.name.replace('_', '-')}")


DRY_RUN_HELP = "Show what would change; change nothing."
BRIDGE_HELP = "OVS bridge that carries the overlay."
DOCKER_BRIDGE_HELP = "Docker's bridge."
SUPERNET_HELP = "The overlay supernet."
DATAPATH_HELP = "system (kernel) or netdev."

DryRun = Annotated[bool, typer.Option("--dry-run", help=DRY_RUN_HELP)]

Bridge = Annotated[str, typer.Option("--bridge", callback=interface_name_option, help=BRIDGE_HELP)]
DockerBridge = Annotated[
    str, typer.Option("--docker-bridge", callback=interface_name_option, help=DOCKER_BRIDGE_HELP)
]
# `reset` undoes what `init` recorded, so its default is the recorded bridge, not docker0.
DockerBridgeRecorded = Annotated[
    str | None,
    typer.Option(
        "--docker-bridge", callback=interface_name_option, help="Default: as init recorded."
    ),
]
# `supervise` runs in a container configured by its environment, so these also read it.
SupervisedBridge = Annotated[
    str,
    typer.Option(
        "--bridge", envvar="OVSNET_BRIDGE", callback=interface_name_option, help=BRIDGE_HELP
    ),
]
SupervisedDockerBridge = Annotated[
    str,
    typer.Option(
        "--docker-bridge",
        envvar="OVSNET_DOCKER_BRIDGE",
        callback=interface_name_option,
        help=DOCKER_BRIDGE_HELP,
    ),
]
Supernet = Annotated[str, typer.Option("--supernet", help=SUPERNET_HELP)]
# `render` leaves it unset so an inventory's value can apply; 10.0.0.0/8 when neither says.
SupernetOrInventory = Annotated[
    str | None, typer.Option("--supernet", help="Overlay supernet [10.0.0.0/8].")
]
SupervisedSupernet = Annotated[
    str, typer.Option("--supernet", envvar="OVSNET_SUPERNET", help=SUPERNET_HELP)
]
Datapath = Annotated[str, typer.Option("--datapath", envvar="OVSNET_DATAPATH", help=DATAPATH_HELP)]

MetricsListen = Annotated[
    str | None,
    typer.Option(
        "--metrics-listen",
        envvar="OVSNET_METRICS_LISTEN",
        help="Serve Prometheus /metrics and /healthz on HOST:PORT (off by default).",
    ),
]
LogFormat = Annotated[
    str, typer.Option("--log-format", envvar="OVSNET_LOG_FORMAT", help="Log lines: text or json.")
]

# etcd, shared by `agent` and every `cluster ...` command.
Etcd = Annotated[
    list[str] | None,
    typer.Option(
        "--etcd",
        envvar="OVSNET_ETCD",
        help="etcd URL, https://HOST:PORT; for an etcd cluster, each member's: repeat the option "
        "or separate URLs with commas.",
    ),
]
EtcdCert = Annotated[
    str | None, typer.Option("--etcd-cert", envvar="OVSNET_ETCD_CERT", help="Client certificate.")
]
EtcdKey = Annotated[
    str | None, typer.Option("--etcd-key", envvar="OVSNET_ETCD_KEY", help="Client key, 0600.")
]
EtcdCa = Annotated[
    str | None,
    typer.Option("--etcd-ca", envvar="OVSNET_ETCD_CA", help="CA of etcd's certificate."),
]
EtcdInsecure = Annotated[
    bool,
    typer.Option(
        "--insecure",
        envvar="OVSNET_ETCD_INSECURE",
        help="Allow etcd without a client certificate (plain http://, or no client-cert auth): "
        "then any host can rewrite every record.",
    ),
]
KeyPrefix = Annotated[str, typer.Option("--key-prefix", help="Where ovsnet's keys live in etcd.")]
