"""`ovsnet batch` command lines: several ovsnet commands for one process (pure).

Place: docs/architecture.md, "Layers": pure layer (the CLI runs them, the renderer writes them).
"""

from __future__ import annotations

from ovsnet.errors import InvalidInput

SEPARATOR = "--then"


def join_steps(commands: list[list[str]]) -> list[str]:
    """The `ovsnet` arguments that run `commands` in order: the command itself when there is
    one, else one `batch` (each ovsnet process pays for Python's start)."""
    if len(commands) == 1:
        return commands[0]
    joined = ["batch", *commands[0]]
    for command in commands[1:]:
        joined += [SEPARATOR, *command]
    return joined


def split_steps(args: list[str]) -> list[list[str]]:
    """`init ... --then peer add ...` as its commands, in order."""
    steps: list[list[str]] = [[]]
    for arg in args:
        if arg == SEPARATOR:
            steps.append([])
        else:
            steps[-1].append(arg)
    if not all(steps):
        raise InvalidInput(
            f"an empty command in the batch (a {SEPARATOR} with nothing before or after it)",
            f"put one ovsnet command between each pair of {SEPARATOR}",
        )
    if any(step[0] == "batch" for step in steps):
        raise InvalidInput("a batch cannot run another batch", "list its commands in this one")
    return steps
