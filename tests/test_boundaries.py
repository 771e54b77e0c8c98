"""Imports run one way: ``receiver → config ← workers``, the CLI above both, and the pure modules
import no I/O library. Read from the source with ``ast``, so an import inside a function or
under ``TYPE_CHECKING`` counts as much as one at the top."""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import run_process

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "receiver", "workers", "flowhooks")
IO_LIBRARIES = ("redis", "rq", "httpx", "starlette", "uvicorn")
PURE = ("receiver/signatures.py", "receiver/normalize.py", "config/sentinel.py")
PURE_WHEN_WRITTEN = ("workers/routing.py", "workers/sinks/text.py")
"""Pure modules of the design that may not exist yet. Rendering's shared core is
``workers/sinks/text.py``; ``workers/rendering.py`` dispatches to the destinations, each of which
holds its send beside its message, so it reaches httpx through them."""


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dotted(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


def imports(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module ``path`` imports: ``x.y`` for ``import x.y`` and ``from x.y import z``,
    and also ``x.y.z`` for the latter (``z`` may be a module); relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path if path.name == "__init__.py" else path.parent, root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                parts = package.split(".")
                module = dotted(*parts[: len(parts) - node.level + 1], node.module)
            if module:
                yield module
            yield from (dotted(module, alias.name) for alias in node.names)


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def local_file(name: str) -> Path | None:
    """The project's source file of module ``name``, if it is one of ours."""
    if not within(name, PACKAGES):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(path: Path) -> dict[str, Path]:
    """Every module ``path`` imports, directly or through the project's own modules, mapped to
    the project file that imports it."""
    seen: dict[str, Path] = {}
    todo = [path]
    visited: set[Path] = set()
    while todo:
        current = todo.pop()
        if current in visited:
            continue
        visited.add(current)
        for name in imports(current):
            seen.setdefault(name, current)
            found = local_file(name)
            if found is not None:
                todo.append(found)
    return seen


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources(package)
        for name in imports(path)
        if within(name, forbidden)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("receiver", ("workers", "flowhooks")),
        ("workers", ("receiver", "flowhooks")),
        ("config", ("receiver", "workers", "flowhooks")),
    ],
)
def test_packages_import_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert sources(package), f"no sources found under {package}/"
    assert offenders(package, forbidden) == []


@pytest.mark.parametrize("module", [*PURE, *(m for m in PURE_WHEN_WRITTEN if (ROOT / m).exists())])
def test_pure_modules_import_no_io_library(module: str) -> None:
    path = ROOT / module
    reached = closure(path)
    assert [
        f"{name} (imported by {importer.relative_to(ROOT)})"
        for name, importer in sorted(reached.items())
        if within(name, IO_LIBRARIES)
    ] == []


def test_the_import_reader_sees_what_is_there() -> None:
    """Guards the guard: the reader finds the imports a module is known to have."""
    app = set(imports(ROOT / "receiver" / "app.py"))
    assert {"starlette.applications", "config.settings", "receiver.jobs"} <= app
    assert "redis" in {name.split(".")[0] for name in closure(ROOT / "receiver" / "app.py")}
    assert "config.schema" in closure(ROOT / "receiver" / "signatures.py")


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    module = package / "mod.py"
    module.write_text("from . import sibling\nfrom .other import thing\nfrom .. import up\n")
    assert set(imports(module, tmp_path)) == {
        "pkg.sub",
        "pkg.sub.sibling",
        "pkg.sub.other",
        "pkg.sub.other.thing",
        "pkg",
        "pkg.up",
    }


@pytest.mark.parametrize(
    ("entry", "forbidden"),
    [("receiver.app", "workers"), ("workers.worker", "receiver")],
)
def test_loading_one_side_does_not_load_the_other(entry: str, forbidden: str) -> None:
    """The same rule at run time, which also catches an import built from a string."""
    code = (
        f"import sys, {entry}\n"
        f"print(sorted(m for m in sys.modules if m == {forbidden!r} "
        f"or m.startswith({forbidden + '.'!r})))"
    )
    result = run_process([sys.executable, "-c", code], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def import_graph(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` and the modules of ``package`` it imports."""
    graph: dict[str, set[str]] = {}
    for path in sources(package):
        found = (local_file(name) for name in imports(path))
        graph[module_name(path)] = {
            module_name(f)
            for f in found
            if f is not None and f != path and within(module_name(f), (package,))
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for each import of ``a`` from which ``a`` is reached again."""

    def reached(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for name in graph.get(todo.pop(), set()) - seen:
                seen.add(name)
                todo.append(name)
        return seen

    return sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if a in reached(b))


def test_no_module_of_workers_imports_one_that_imports_it_back() -> None:
    graph = import_graph("workers")
    assert "workers.delivery" in graph
    assert cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        "a -> b",
        "b -> c",
        "c -> a",
    ]
