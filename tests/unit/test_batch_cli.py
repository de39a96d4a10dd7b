"""`ovsnet batch`: commands in order in one process, stopping at the first that fails."""

from __future__ import annotations

import json

import pytest

from ovsnet.batch import join_steps, split_steps
from ovsnet.cli import main
from ovsnet.errors import InvalidInput


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_each_command_runs_in_order_with_its_own_options(capsys):
    code, out, err = run(capsys, "batch", "render", "daemon-json", "--prefix", "10.0.42",
                         "--then", "render", "daemon-json", "--subnet", "10.0.43.0/24")  # fmt: skip
    assert (code, err) == (0, "")
    first, second = (json.loads("{" + part) for part in out.split("{")[1:])
    assert (first["fixed-cidr"], second["fixed-cidr"]) == ("10.0.42.0/24", "10.0.43.0/24")


def test_the_first_failure_stops_the_batch_with_its_exit_code(capsys):
    code, out, err = run(capsys, "batch", "render", "daemon-json", "--prefix", "10.0.42",
                         "--then", "render", "daemon-json", "--prefix", "10.0.420",
                         "--then", "render", "daemon-json", "--prefix", "10.0.44")  # fmt: skip
    assert code == 2
    assert "10.0.42.0/24" in out and "10.0.44" not in out  # the third never ran
    assert err.count("\n") == 1 and err.startswith("ovsnet: error: ") and "10.0.420" in err


@pytest.mark.parametrize(
    "args, problem",
    [
        (["init", "--prefix", "10.0.42", "--then"], "empty command"),
        (["--then", "status"], "empty command"),
        (["status", "--then", "--then", "status"], "empty command"),
        (["status", "--then", "batch", "status"], "another batch"),
    ],
)
def test_empty_or_nested_commands_are_refused_before_anything_runs(args, problem):
    with pytest.raises(InvalidInput, match=problem):
        split_steps(args)


def test_json_belongs_to_a_command_not_to_the_batch(capsys):
    code, out, err = run(capsys, "--json", "batch", "render", "daemon-json", "--prefix", "10.0.42")
    assert code == 2 and "--json is not for the batch" in err
    assert json.loads(out)["error"]["code"] == 2  # the error document, and no rendering


def test_one_command_needs_no_batch_and_more_are_joined_by_then():
    init, peers = ["init", "--prefix", "10.0.42"], ["peer", "add", "198.51.100.2"]
    assert join_steps([init]) == init
    joined = join_steps([init, peers])
    assert joined == ["batch", *init, "--then", *peers]
    assert split_steps(joined[1:]) == [init, peers]
