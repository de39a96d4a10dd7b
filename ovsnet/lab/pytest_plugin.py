"""pytest fixtures for the multi-host lab.

Register in a conftest.py: ``pytest_plugins = ["ovsnet.lab.pytest_plugin"]``.

Fixtures (all need root; without it they fail with a clear message, they never skip):

``lab_factory``
    Scope: function. Depends on: nothing.
    A callable taking the keywords of ``Lab.up`` (``hosts=3, docker=True, name=None,
    workdir=None, dockerd_args=()``) and returning a started ``Lab``. Every lab it made is torn
    down at teardown (stopped by PID, namespaces and files removed), even when the test failed;
    a teardown that leaves anything behind is reported as an error of that test.

``lab_factory_module``
    Scope: module. Depends on: nothing.
    The same as ``lab_factory`` for labs shared by the tests of one module (torn down after
    the module's last test).

``lab3``
    Scope: module. Depends on: nothing.
    A 3-host lab with a Docker engine on each host (``h1``..``h3``, underlay 198.51.100.11-13,
    prefixes 10.0.1-10.0.3), shared by the tests of one module. A test that changes a host
    (init, peers, containers) undoes it, or uses ``lab_factory`` instead.

Session safety net: when the run ends, any lab this pytest process created and did not remove
is reported, removed, and turns the run into a failure. Labs leaked by earlier, killed runs are
reported with the command that removes them (``ovsnet lab prune``).
"""

from __future__ import annotations

import os
import secrets

import pytest

from ovsnet.lab import Lab, LabError, list_labs
from ovsnet.lab.lab import find_leaked_netns

_REPORT_KEY = pytest.StashKey[list[str]]()


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "lab tests need root (network namespaces, OVS and Docker daemons): run pytest as "
            "root, or deselect them with -m 'not lab'",
            pytrace=False,
        )


def _test_lab_name() -> str:
    return f"pt-{secrets.token_hex(3)}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab: needs root, network namespaces and the real OVS/Docker daemons"
    )
    config.stash[_REPORT_KEY] = []


class _LabMaker:
    """Makes labs and tears every one of them down, reporting anything left behind."""

    def __init__(self) -> None:
        self.made: list[Lab] = []

    def __call__(self, hosts: int = 3, **options) -> Lab:
        options.setdefault("name", _test_lab_name())
        try:
            lab = Lab.up(hosts, **options)
        except LabError as exc:
            if exc.lab is not None:  # up() cleaned up already; check that again at teardown
                self.made.append(exc.lab)
            raise
        self.made.append(lab)
        return lab

    def teardown(self) -> None:
        problems = []
        for lab in reversed(self.made):
            try:
                lab.down()
            except LabError as exc:
                problems.append(exc.one_line())
        if problems:
            pytest.fail("lab teardown left things behind: " + " / ".join(problems), pytrace=False)


@pytest.fixture
def lab_factory():
    """Make labs (same keywords as Lab.up); all are torn down after the test."""
    _require_root()
    maker = _LabMaker()
    yield maker
    maker.teardown()


@pytest.fixture(scope="module")
def lab_factory_module():
    """Make labs shared by one module's tests; all are torn down after its last test."""
    _require_root()
    maker = _LabMaker()
    yield maker
    maker.teardown()


@pytest.fixture(scope="module")
def lab3():
    """A 3-host lab with Docker, shared by one test module."""
    _require_root()
    lab = Lab.up(3, name=_test_lab_name())
    try:
        yield lab
    finally:
        lab.down()


def _mine(lab: Lab) -> bool:
    owner = lab.state.owner
    return owner is not None and owner.pid == os.getpid()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.geteuid() != 0:
        return
    report = session.config.stash.get(_REPORT_KEY, [])
    for lab in list_labs():
        owner = lab.state.owner
        if _mine(lab):
            report.append(f"LEAK: this run left lab {lab.name} ({lab.directory}); removing it")
            try:
                lab.down()
            except LabError as exc:
                report.append(f"  and could not remove it: {exc.one_line()}")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif owner is not None and not owner.alive():
            report.append(
                f"stale lab {lab.name} from a run that died (pid {owner.pid}): "
                "remove with `ovsnet lab prune`"
            )
    for name in find_leaked_netns():
        report.append(
            f"network namespace {name} belongs to no known lab "
            f"(remove with `ip netns delete {name}` if no lab of yours is starting)"
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT_KEY, [])
    if report:
        terminalreporter.section("ovsnet lab safety net", red=True)
        for line in report:
            terminalreporter.line(line)
