"""ovsnet's modules import each other without circles (docs/architecture.md, "Layers").

The graph is read from the source with `ast`, not by importing. Every `import` counts, also
those inside functions and under `if TYPE_CHECKING:`: a lazy import keeps start-up cheap, it does
not make a dependency go away, and a circle hidden in a function is still two modules that
cannot be understood (or split) one without the other. Importing a submodule does not count as
depending on its parent package's `__init__` (that is Python's machinery, not a design choice).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ovsnet"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted name lives in (`ovsnet.ipsec.PSK_KEY` -> `ovsnet.ipsec`)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                anchor = anchor.rpartition(".")[0]
            base = f"{anchor}.{base}" if base else anchor
        # `from ovsnet.lab import proc` depends on ovsnet.lab.proc, not on ovsnet.lab.
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names
        ]
    else:
        return []
    resolved = (_resolve(name, modules) for name in names if name.split(".")[0] == "ovsnet")
    return [target for target in resolved if target]


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first import}, for every module of the package."""
    modules = module_files(package)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, module, path.name == "__init__.py", modules):
                if target != module:
                    edges.setdefault(target, getattr(node, "lineno", 0))
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def describe(component: set[str], graph: dict[str, dict[str, int]]) -> str:
    lines = []
    for module in sorted(component):
        for target, line in sorted(graph[module].items()):
            if target in component:
                lines.append(f"  {module} (line {line}) imports {target}")
    return "\n".join(lines)


def test_ovsnet_has_no_import_circle():
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n" + "\n\n".join(describe(c, graph) for c in found)


def test_the_graph_sees_lazy_and_type_checking_imports(tmp_path):
    package = tmp_path / "ovsnet"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from ovsnet.sub import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import X\n"
    )
    (package / "c.py").write_text("from ovsnet import a\nimport os\n")
    (package / "d.py").write_text("from ovsnet.sub.b import name\n")
    graph = import_graph(package)
    assert graph["ovsnet.a"] == {"ovsnet.sub.b": 2}
    assert graph["ovsnet.sub.b"] == {"ovsnet.c": 3}
    assert graph["ovsnet.d"] == {"ovsnet.sub.b": 1}
    assert circles(graph) == [{"ovsnet.a", "ovsnet.sub.b", "ovsnet.c"}]


def outside_imports_of(
    prefixes: tuple[str, ...], allowed: str, package: Path = PACKAGE
) -> list[str]:
    """Modules outside `allowed` (a package) that import a library named by `prefixes`."""
    found = []
    for module, path in module_files(package).items():
        if module == allowed or module.startswith(allowed + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] in prefixes for name in names):
                found.append(f"{module} (line {node.lineno})")
    return found


def test_only_the_etcd_facade_imports_the_etcd_client():
    assert outside_imports_of(("pyetcd", "grpc"), "ovsnet.etcd") == []


def test_only_the_ovsdb_facade_imports_ovsdbapp():
    assert outside_imports_of(("ovsdbapp",), "ovsnet.ovsdb") == []


def test_outside_imports_are_seen(tmp_path):
    package = tmp_path / "ovsnet"
    (package / "etcd").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "etcd" / "__init__.py").write_text("")
    (package / "etcd" / "client.py").write_text("import pyetcd\n")
    (package / "agent.py").write_text("def f():\n    from pyetcd.client import Endpoint\n")
    found = outside_imports_of(("pyetcd",), "ovsnet.etcd", package)
    assert found == ["ovsnet.agent (line 2)"]
