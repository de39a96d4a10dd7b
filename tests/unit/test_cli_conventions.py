"""--version, shell completion, help pages without markup escapes, the man page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from ovsnet import __version__
from ovsnet.cli import main
from ovsnet.cli.app import app
from ovsnet.manpage import walk

OVSNET = str(Path(sys.executable).with_name("ovsnet"))
ROOT = typer.main.get_command(app)
# Every command path, hidden ones included: a hidden command's --help is still read by someone.
PATHS = [path.split()[1:] for path, _ in walk(ROOT, "ovsnet")]
HIDDEN = [[name] for name, command in ROOT.commands.items() if command.hidden]
# Escapes meant for rich (\[ and [bold]...[/]) or for a markdown renderer (\b from click).
STRAY_MARKUP = re.compile(r"\\\[|\[/\]|\[/?(bold|red|green|yellow|dim|italic)\]|\x08")


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [OVSNET, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ovsnet {__version__}\n"


def test_the_walk_finds_nested_subcommands():
    assert ["peer", "add"] in PATHS and ["doctor"] in PATHS and ["completion"] in PATHS
    assert len(PATHS) > 40


@pytest.mark.parametrize("path", PATHS + HIDDEN, ids=lambda p: " ".join(p) or "ovsnet")
def test_help_page_has_no_markup_escapes(path, capsys):
    assert main([*path, "--help"]) == 0
    page = capsys.readouterr().out
    assert "Usage: ovsnet" in page
    assert not STRAY_MARKUP.search(page), STRAY_MARKUP.search(page).group(0)


def test_option_defaults_still_show_in_help(capsys):
    main(["init", "--help"])
    assert "[default: br0]" in capsys.readouterr().out


def test_bash_completion_script_completes_commands_in_bash():
    script = _run("completion", "bash").stdout
    shell = f"""
        {script}
        COMP_WORDS=(ovsnet pe); COMP_CWORD=1; _ovsnet_completion ovsnet
        echo "${{COMPREPLY[*]}}"
        COMP_WORDS=(ovsnet peer re); COMP_CWORD=2; _ovsnet_completion ovsnet
        echo "${{COMPREPLY[*]}}"
    """
    path = f"{Path(OVSNET).parent}:{os.environ['PATH']}"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True,
                            env={**os.environ, "PATH": path})  # fmt: skip
    assert result.stdout.split("\n")[:2] == ["peer", "remove"], result.stderr


def test_zsh_completion_requests_are_answered():
    # No zsh here: make the request its script makes and check the answer's shape.
    assert "_OVSNET_COMPLETE=complete_zsh ovsnet" in _run("completion", "zsh").stdout
    answer = _run(env={"_OVSNET_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "ovsnet peer a"})
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("_arguments") and '"add":' in answer.stdout


def test_fish_completion_requests_are_answered():
    assert "complete --command ovsnet" in _run("completion", "fish").stdout
    env = {
        "_OVSNET_COMPLETE": "complete_fish",
        "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        "_TYPER_COMPLETE_ARGS": "ovsnet doc",
    }
    answer = _run(env=env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split("\t")[0] == "doctor"


def test_completion_refuses_an_unknown_shell(capsys):
    assert main(["completion", "tcsh"]) == 2
    assert "tcsh" in capsys.readouterr().err


def test_man_page_lists_every_visible_command(capsys):
    assert main(["man"]) == 0
    page = capsys.readouterr().out
    assert page.startswith(f'.TH OVSNET 1 "{__version__}"')
    for path in PATHS[1:]:
        heading = f".SS ovsnet {' '.join(path)}\n".replace("-", "\\-")
        assert heading in page
    assert ".SS ovsnet render-examples" not in page  # hidden
    assert "\\fB\\-\\-dry\\-run\\fR" in page


def test_man_page_formats_without_warnings_in_man(tmp_path):
    page = tmp_path / "ovsnet.1"
    assert main(["man", "-o", str(page)]) == 0
    result = subprocess.run(["man", "--warnings=w", "-l", str(page)], capture_output=True,
                            text=True, env={**os.environ, "MANWIDTH": "200"})  # fmt: skip
    assert result.returncode == 0
    assert "ovsnet peer add" in result.stdout
    assert "warning" not in result.stderr, result.stderr


def test_checked_in_man_page_is_fresh(capsys):
    main(["man"])
    committed = Path(__file__).parents[2] / "docs" / "man" / "ovsnet.1"
    assert committed.read_text() == capsys.readouterr().out, "run `make man`"
