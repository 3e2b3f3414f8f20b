"""Data flows one way: each module imports only from modules earlier in the flow, and
nothing imports in a circle. Read from the source (ast), so a deferred import inside a
function counts as a dependency too; imports under ``if TYPE_CHECKING`` do not."""

from __future__ import annotations

import ast
from pathlib import Path

import mockserver

ROOT = Path(mockserver.__file__).parent

# The flow, earliest first (ARCHITECTURE: model <- framing <- dialects <- cassettes <-
# index/player <- recorder, timing <- app <- cli). A module may import its own package's
# modules and those of any earlier layer.
LAYERS = [
    {"errors", "model", "server_limits"},
    {"framing", "timing", "loops", "storage", "safe_yaml", "intake", "faults"},
    {"dialects"},
    {"credentials", "shape"},
    {"redaction"},
    {"cassettes", "lazy_entries"},  # lazy_entries: the index's entries decoded on demand
    {"validation", "index", "synth", "cassette_secrets"},  # lint reads cassette files
    {"misses", "fault_wire", "pacer", "index_codec"},  # pacer: every paced stream, one timer
    {"player", "index_cache"},  # index_cache: where index_codec's files live, and when
    {"paced"},  # a paced stream on the wire: its headers, then the pacer
    {"recorder", "conformance"},
    {"app", "drift"},
    {"connections"},  # each connection under the limits: timeouts, count, broken HTTP
    {"serving", "listeners"},  # the app on a socket, through those connections
    {"server_thread", "workers"},  # on a thread for tests; in forked processes for serve
    {"cli"},
    {"__main__", "gunicorn"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def top(module: str) -> str:
    """``mockserver.dialects.openai.chat`` -> ``dialects``."""
    return module.split(".")[1]


def imports(path: Path, module_level_only: bool) -> set[str]:
    """The mockserver modules (or packages) that ``path`` imports."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not module_level_only:
                    visit(node.body)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt)])
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {name for name in found if name.startswith("mockserver.")}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("mockserver", *path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str:
    """``mockserver.cassettes.load`` -> ``mockserver.cassettes``: the module imported."""
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def test_every_module_has_a_place_in_the_flow() -> None:
    unplaced = sorted({top(m) for m in modules() if m != "mockserver"} - RANK.keys())
    assert not unplaced, f"add these to LAYERS where they sit in the flow: {unplaced}"


def test_imports_follow_the_flow() -> None:
    known = modules()
    backwards = []
    for module, path in known.items():
        if module == "mockserver" or top(module) not in RANK:
            continue
        for target in {resolve(name, known) for name in imports(path, False)}:
            if target == "mockserver":
                backwards.append(f"{module} imports the package itself (use the module)")
            elif top(target) == top(module) or top(target) not in RANK:
                continue  # within a package; or unplaced (the test above names it)
            elif RANK[top(target)] >= RANK[top(module)]:
                backwards.append(f"{module} imports {target}")
    assert not backwards, "imports against the flow:\n" + "\n".join(sorted(backwards))


def test_no_import_cycles() -> None:
    known = modules()
    graph = {
        module: {resolve(name, known) for name in imports(path, True)} - {module}
        for module, path in known.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
