"""The import-layers contract of soke_lightning (docs/design.md, "Layers"), checked over the source tree.

Read with ``ast``, every import counts, including those inside functions. :func:`check_tree` returns one line per
violation, so the test can show all of them at once and the test of the test can plant one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

#: Sub-packages, lowest layer first; packages in one tuple share a layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",), ("data",), ("kinematics",), ("synthsign",), ("models",), ("metrics",), ("retrieval", "render"),
    ("report",), ("callbacks",), ("training",), ("pipelines",), ("cli",),
)
#: The one module allowed to import our own modules lazily (inside functions): the command registry.
LAZY_ALLOWED = ("cli",)
#: Where argparse may be imported.
ARGPARSE_ALLOWED = ("cli",)


def layer_of(package: str) -> int:
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise KeyError(package)


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _in_function(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def imports(path: Path, src: Path) -> Iterable[tuple[str, list[str], int, bool]]:
    """(imported module, imported names, line, inside a function) of every import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    here = module_name(path, src).split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno, _in_function(node, parents)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if path.name == "__init__.py" else here[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            package_dir = src.joinpath(*target.split("."))
            submodules = [n for n in names if (package_dir / f"{n}.py").is_file() or (package_dir / n).is_dir()]
            for name in submodules:  # `from pkg import module` imports pkg.module
                yield f"{target}.{name}", [], node.lineno, _in_function(node, parents)
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                yield target, rest, node.lineno, _in_function(node, parents)


def check_tree(src: Path, package: str = "soke_lightning") -> list[str]:
    """Every violation of the layer rules under ``src/package``, one line each (empty: the tree keeps them)."""
    root = src / package
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, src)
        sub = mod.split(".")[1] if mod.count(".") >= 1 else ""
        where = f"{path.relative_to(src)}"
        graph.setdefault(mod, set())
        for target, names, line, lazy in imports(path, src):
            top = target.split(".")[0]
            if top == "argparse" and sub not in ARGPARSE_ALLOWED:
                problems.append(f"{where}:{line}: imports argparse; commands live in cli/<verb>.py")
            if top != package:
                continue
            tsub = target.split(".")[1] if target.count(".") >= 1 else ""
            graph[mod].add(target)
            if lazy and not (sub in LAZY_ALLOWED and path.name == "__init__.py"):
                problems.append(f"{where}:{line}: imports {target} inside a function (only the command registry "
                                f"cli/__init__.py may)")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"{where}:{line}: imports private {private} from {target}")
            if sub and tsub:
                try:
                    if layer_of(tsub) > layer_of(sub):
                        problems.append(f"{where}:{line}: {sub}/ imports {target}, a higher layer ({tsub}/)")
                except KeyError as err:
                    problems.append(f"{where}:{line}: package {err.args[0]!r} is in no layer of LAYERS")
            elif sub and not tsub and target == package and sub not in ("cli",):
                problems.append(f"{where}:{line}: imports the package root {package}")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a closed path of names.

    An import of a package counts as an import of its ``__init__``; ``a.b`` importing ``a`` (its own package) is not
    a cycle by itself, since Python finishes ``a/__init__`` before ``a.b`` runs when ``a`` does not import ``a.b``.
    """
    nodes = {n: {t for t in targets if t in graph and t != n} for n, targets in graph.items()}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in nodes[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def private_imports(paths: Iterable[Path], package: str = "soke_lightning") -> list[str]:
    """``from soke_lightning.x import _name`` anywhere in ``paths`` (tests, scripts, benchmarks)."""
    problems = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    problems.append(f"{path}:{node.lineno}: imports private {private} from {node.module}")
    return problems
