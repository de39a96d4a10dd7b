"""`ovsnet agent` / `ovsnet cluster` refuse bad input with one line and exit 2, before any
connection is made (no etcd runs here: a connection attempt would be exit 3, not 2)."""

from __future__ import annotations

import pytest

from ovsnet.cli import main

URL = "https://198.51.100.2:2379"


@pytest.fixture
def tls_files(tmp_path):
    paths = {}
    for name in ("cert", "key", "ca"):
        path = tmp_path / f"{name}.pem"
        path.write_text("placeholder\n")
        path.chmod(0o600)
        paths[name] = str(path)
    return paths


def etcd_args(files, url=URL):
    return [
        "--etcd",
        url,
        "--etcd-cert",
        files["cert"],
        "--etcd-key",
        files["key"],
        "--etcd-ca",
        files["ca"],
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ttl", "1"], "--ttl 1 is out of range"),
        (["--type", "ipip"], "unknown tunnel type"),
        (["--prefix", "10.0.300"], "prefix '10.0.300' is malformed"),
        (["--prefix", "192.168.1"], "is not a usable /24 of 10.0.0.0/8"),
        (["--supernet", "10.0.0.0/24"], "has no room for /24 host subnets"),
        (["--name", "bad/name"], "host name 'bad/name' is not valid"),
        (["--underlay-ip", "nope"], "--underlay-ip 'nope' is not an IPv4 address"),
        (["--ipsec-psk-file", "/nonexistent"], "--ipsec-psk-file needs --ipsec"),
        (["--ipsec-cert", "/nonexistent"], "--ipsec-cert needs --ipsec"),
        (["--ipsec", "--ipsec-cert", "/x", "--ipsec-psk-file", "/y"], "not both"),
        (["--ipsec", "--ipsec-cert", "/nonexistent"], "cannot read /nonexistent"),
        (["--key-prefix", "ovsnet"], "key prefix 'ovsnet' is not valid"),
        (["--key-prefix", "/ovs\nnet/"], "key prefix '/ovs\\nnet/' contains the control"),
        (["--underlay-ip", "127.0.0.1"], "--underlay-ip 127.0.0.1 is not a unicast host address"),
        (["--underlay-ip", "224.0.0.1"], "(multicast space)"),
        (["--underlay-ip", "10.0.0.5"], "inside the overlay supernet 10.0.0.0/8"),
        (["--supernet", "169.254.0.0/16"], "overlaps link-local space"),
        (["--bridge", "my bridge"], "--bridge 'my bridge' contains a space"),
        (["--name", "h1\n"], "host name 'h1\\n' is not valid"),
        (["--resync-interval", "0"], "--resync-interval 0 is out of range"),
        (["--on-etcd-loss", "panic"], "--on-etcd-loss 'panic' is not known"),
    ],
)
def test_agent_refuses_bad_options_with_exit_2(tls_files, capsys, extra, message):
    argv = ["agent", *etcd_args(tls_files), "--name", "h1", "--underlay-ip", "198.51.100.11"]
    code = main([*argv, *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--etcd", "198.51.100.2:2379"], "is not valid"),
        (["--etcd", "https://198.51.100.2"], "is not valid"),
        (["--etcd", URL], "needs --etcd-ca"),
        (["--etcd", "http://198.51.100.2:2379", "--etcd-ca", "/x"], "plain http://"),
        (["--etcd", URL, "--etcd-ca", "/nonexistent/ca.pem"], "cannot read /nonexistent/ca.pem"),
        (["--etcd", URL, "--etcd-cert", "/x"], "give both --etcd-cert and --etcd-key"),
        (["--etcd", "http://198.51.100.2:2379"], "plain http:// without client-certificate auth"),
        (["--etcd", f"{URL},198.51.100.3:2379"], "'198.51.100.3:2379' is not valid"),
        (["--etcd", URL, "--etcd", "https://198.51.100.3"], "'https://198.51.100.3' is not valid"),
        (["--etcd", f"{URL},http://198.51.100.3:2379"], "mix http:// and https://"),
    ],
)
def test_cluster_status_refuses_bad_etcd_options_with_exit_2(capsys, monkeypatch, args, message):
    monkeypatch.delenv("OVSNET_ETCD", raising=False)
    code = main(["cluster", "status", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_no_etcd_url_at_all_is_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("OVSNET_ETCD", raising=False)
    assert main(["cluster", "release", "h1"]) == 2
    assert "no etcd URL" in capsys.readouterr().err


def test_etcd_without_a_client_certificate_needs_insecure(tls_files, capsys, monkeypatch):
    monkeypatch.delenv("OVSNET_ETCD_INSECURE", raising=False)
    ca_only = ["--etcd", URL, "--etcd-ca", tls_files["ca"]]
    for argv in (["cluster", "status", *ca_only], ["agent", "--etcd", "http://198.51.100.2:2379"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--insecure to accept that" in err and err.count("\n") == 1
    # With --insecure the options pass; the agent then fails on the next bad option, not on
    # the missing certificate.
    argv = ["agent", "--etcd", "http://198.51.100.2:2379", "--insecure", "--ttl", "1"]
    assert main(argv) == 2
    assert "--ttl 1 is out of range" in capsys.readouterr().err


def test_several_etcd_members_from_options_and_environment(monkeypatch):
    from ovsnet.cli.cluster_commands import etcd_config

    monkeypatch.delenv("OVSNET_ETCD", raising=False)
    a, b, c = (f"http://198.51.100.{i}:2379" for i in (2, 3, 4))
    assert etcd_config([a, f"{b}, {c}", a], None, None, None, True).urls == (a, b, c)
    # The environment is read where the option is parsed (typer's envvar), as for every option.
    import typer.main

    from ovsnet.cli.app import app

    monkeypatch.setenv("OVSNET_ETCD", f"{c},{a}")
    status = typer.main.get_command(app).commands["cluster"].commands["status"]
    from_env = status.make_context("status", []).params["etcd"]
    assert etcd_config(from_env, None, None, None, True).urls == (c, a)
    assert etcd_config(from_env, None, None, None, True).endpoint == ("198.51.100.4", 2379, False)
