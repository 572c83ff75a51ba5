"""Checks that keep the package's structure (issue #10), read from the source
with ast, never by importing it: module size, no import cycle, the CLI layer
on top, and short positional parameter lists. Each names its offenders."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "logjam"

MAX_LINES = 450
MAX_POSITIONAL = 5
# The commands: only they (and a __main__ module) may import the CLI layer,
# and no module imports one of them.
CLI = "logjam.cli"
COMMANDS = {"logjam.compress", "logjam.upload", "logjam.status", "logjam.cat"}
# logging handlers and formatters that keep the stdlib's signature (here
# FileHandler's: encoding, delay, errors), by qualified name.
STDLIB_SIGNATURES = {"logjam.handlers.HourlyFileHandler.__init__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def parse(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


@dataclasses.dataclass(frozen=True)
class Edge:
    """One import of a logjam module by another, where it is written."""

    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({MODULES[self.importer].relative_to(PACKAGE.parent)}:{self.line})"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node below tree, inside functions too, except the bodies of
    ``if TYPE_CHECKING:`` (annotations only: no import at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield child
                yield from _statements(child)
            continue
        yield node
        yield from _statements(node)


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(importer: str) -> Iterator[Edge]:
    """The logjam modules importer imports (from logjam import fsutil names
    the module fsutil; from logjam.backends import get_uploader the package)."""
    for node in _statements(parse(importer)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, node)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target in MODULES and target != importer:
                yield Edge(importer, target, node.lineno)


EDGES = sorted({edge for name in MODULES for edge in imports(name)}, key=str)


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Takes import edges. Returns the groups of modules that import each
    other, directly or round a loop (strongly connected components, Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_modules_are_at_most_450_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    offenders = [f"{MODULES[name].relative_to(PACKAGE.parent)}: {lines} lines"
                 for name, lines in sizes.items() if lines > MAX_LINES]
    assert not offenders, f"modules over {MAX_LINES} lines (split by concern):\n" + "\n".join(offenders)


def test_no_import_cycle():
    offenders = []
    for group in cycles(EDGES):
        members = set(group)
        offenders.append("cycle among " + ", ".join(group) + ":\n" + "\n".join(
            f"  {edge}" for edge in EDGES if edge.importer in members and edge.imported in members))
    assert not offenders, "modules that import each other (imports inside functions count):\n" + "\n".join(offenders)


def _entry_point(name: str) -> bool:
    return name.rpartition(".")[2] == "__main__"


def test_only_commands_import_the_cli_layer():
    offenders = [str(edge) for edge in EDGES
                 if edge.imported == CLI and edge.importer not in COMMANDS and not _entry_point(edge.importer)]
    assert not offenders, f"only the commands ({', '.join(sorted(COMMANDS))}) may import {CLI}:\n" + "\n".join(offenders)


def test_no_module_imports_a_command():
    offenders = [str(edge) for edge in EDGES if edge.imported in COMMANDS and not _entry_point(edge.importer)]
    assert not offenders, ("a command module is the top of the stack; move what is shared into a lower "
                           "module:\n" + "\n".join(offenders))


def _positional(function: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> list[str]:
    names = [arg.arg for arg in (*function.args.posonlyargs, *function.args.args)]
    static = any(isinstance(decorator, ast.Name) and decorator.id == "staticmethod"
                 for decorator in function.decorator_list)
    if method and not static and names:
        names = names[1:]  # self or cls
    return names


def functions(tree: ast.AST, prefix: str, *, method: bool = False
              ) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Every function below tree: (qualified name, node, whether it is a method)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}.{node.name}", node, method
            yield from functions(node, f"{prefix}.{node.name}")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}.{node.name}", method=True)
        else:
            yield from functions(node, prefix, method=method)


def long_positional_lists() -> dict[str, str]:
    """Functions with more than 5 positional parameters (self and cls not
    counted). Returns qualified name -> where and what, for the message."""
    found = {}
    for name, path in MODULES.items():
        for qualname, function, method in functions(parse(name), name):
            positional = _positional(function, method=method)
            if len(positional) > MAX_POSITIONAL and qualname not in STDLIB_SIGNATURES:
                found[qualname] = (f"{path.relative_to(PACKAGE.parent)}:{function.lineno} {function.name}"
                                   f"({', '.join(positional)}): {len(positional)} positional")
    return found


def test_no_function_takes_more_than_5_positional_parameters():
    offenders = list(long_positional_lists().values())
    assert not offenders, (f"functions with more than {MAX_POSITIONAL} positional parameters (make the "
                           "rest keyword-only, or pass one object):\n" + "\n".join(offenders))


# -- the checks see what they check ----------------------------------------------------------------

def test_the_import_reader_sees_function_level_imports_and_skips_type_checking():
    edges = {(edge.importer, edge.imported) for edge in EDGES}
    assert ("logjam.compress", "logjam.cli") in edges
    assert ("logjam.backends", "logjam.backends.file") in edges or ("logjam.backends", "logjam.backends.s3") in edges
    # monitoring imports runner only under TYPE_CHECKING
    assert ("logjam.monitoring", "logjam.runner") not in edges


def test_cycles_finds_a_loop():
    loop = [Edge("logjam.cli", "logjam.runner", 1), Edge("logjam.runner", "logjam.signals", 1),
            Edge("logjam.signals", "logjam.cli", 1), Edge("logjam.cli", "logjam.errors", 1)]
    assert cycles(loop) == [["logjam.cli", "logjam.runner", "logjam.signals"]]
