"""Which of the project's source files a module imports, read from the code (statically).

A DVC stage's code dependencies are the import closure of its script: every module it
imports, directly or through others, at the top or inside a function (a lazy import is
still an import), each package's ``__init__`` on the way, but not what is imported only
for type checkers (``if TYPE_CHECKING:``) nor modules loaded by a name in a string
(``importlib.import_module``). The model registry loads family adapters that way on
purpose: an adapter belongs to the cache key of its own family's models only
(`kisbench.models.codekey`). The tests hold dvc.yaml to these closures.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

# Top-level packages whose modules are the project's own (the rest are libraries).
PROJECT_PACKAGES = ("kisbench", "stages", "benchmarks")


def module_file(module: str, root: Path = Path(".")) -> Path | None:
    """``kisbench.data.store`` -> ``kisbench/data/store.py`` (or the package's
    ``__init__.py``), relative to ``root``; None if the project has no such module."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / path).is_file():
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module name the code may import, parents and ``from X import name`` candidates
    included (a name that is not a module is dropped later)."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        out.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out


@functools.cache
def _direct(module: str, root: Path) -> tuple[str, ...]:
    path = module_file(module, root)
    if path is None:
        return ()
    tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=str(path))
    found = {
        name
        for name in _imported_names(tree, module, path.name == "__init__.py")
        if name != module and module_file(name, root) is not None
    }
    return tuple(sorted(found))


def direct_imports(module: str, root: Path = Path(".")) -> tuple[str, ...]:
    """The project modules ``module`` itself imports (see the module docstring)."""
    return _direct(module, Path(root).resolve())


def closure(modules: list[str] | tuple[str, ...], root: Path = Path(".")) -> set[Path]:
    """The project's files that importing ``modules`` runs (the modules' own included)."""
    root = Path(root).resolve()
    seen: set[str] = set()
    todo = [m for m in modules]
    for m in modules:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    while todo:
        name = todo.pop()
        if name in seen or module_file(name, root) is None:
            continue
        seen.add(name)
        todo.extend(_direct(name, root))
    return {p for p in (module_file(m, root) for m in seen) if p is not None}
