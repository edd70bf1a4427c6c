"""The shape of the product code (cvas/, tasks/): functions fit on a screen (80 lines), and
every DuckDB connection is opened by `cvas.sql.connect` (no progress bar in cron logs)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 80


def long_functions(root: Path = REPO, limit: int = LIMIT) -> list[tuple[str, str, int, int]]:
    """(path, name, line, length) of every function or method under `root`'s cvas/ and tasks/
    longer than `limit` lines, decorators and docstring included (a nested function counts
    within its parent and on its own)."""
    found = []
    for path in sorted([*root.glob("cvas/**/*.py"), *root.glob("tasks/**/*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - first + 1
                if lines > limit:
                    found.append((path.relative_to(root).as_posix(), node.name, node.lineno, lines))
    return found


def test_no_function_over_80_lines():
    assert [f"{path}:{line} {name} ({n} lines)" for path, name, line, n in long_functions()] == []


def test_the_check_finds_functions_and_methods_over_the_limit(tmp_path):
    def body(n: int) -> str:
        return "\n".join(f"        x{i} = {i}" for i in range(n))

    (tmp_path / "cvas" / "sub").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "cvas" / "sub" / "m.py").write_text(f"class C:\n    @staticmethod\n    def long():\n{body(LIMIT - 1)}\n")
    (tmp_path / "tasks" / "t.py").write_text(f"class C:\n    def short():\n{body(LIMIT - 1)}\n")
    (tmp_path / "elsewhere.py").write_text(f"def f():\n{body(LIMIT * 2)}\n")
    assert long_functions(tmp_path) == [("cvas/sub/m.py", "long", 3, LIMIT + 1)]


def test_every_duckdb_connection_is_opened_by_cvas_sql_connect():
    """DuckDB prints a progress bar to stdout for any query over two seconds, log file or not:
    a year's backfill left bars in its cron log. `cvas.sql.connect` turns it off."""
    from cvas.sql import connect

    opened = [path.relative_to(REPO).as_posix()
              for path in sorted([*REPO.glob("cvas/**/*.py"), *REPO.glob("tasks/**/*.py")])
              if "duckdb.connect(" in path.read_text(encoding="utf-8")]
    assert opened == ["cvas/sql/__init__.py"]
    con = connect(threads=1)
    assert con.sql("select current_setting('enable_progress_bar'), current_setting('threads')").fetchone() == (False, 1)


# -- the house: core is the ground, no import cycle, modules by job ----------------------------

MODULE_LIMIT = 500
# the sub-packages of cvas/ that core may not reach, at module or function level
ABOVE_CORE = ("cvas.steps", "cvas.sources", "cvas.ops", "cvas.analyst", "cvas.simulator", "tasks", "bench")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """{module: the cvas/tasks modules it imports, anywhere in its body} of cvas/ and tasks/."""
    files = sorted([*root.glob("cvas/**/*.py"), *root.glob("tasks/**/*.py")])
    modules = {_module_name(root, p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph` (one per strongly connected component of two or more modules,
    or a module importing itself), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_core_imports_nothing_above_it():
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() if m.startswith("cvas.core")
                    for t in targets if t.startswith(ABOVE_CORE))
    assert upward == []


def test_cvas_never_imports_tasks_or_luigi():
    offenders = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("cvas/**/*.py")
                       if any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                              any((getattr(n, "module", None) or a.name).split(".")[0] in ("luigi", "tasks")
                                  for a in n.names)
                              for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))))
    assert offenders == []


def test_no_import_cycle_in_cvas_or_tasks():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "cvas" / "core").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "cvas" / "core" / "a.py").write_text("def f():\n    from cvas.steps.b import g\n")
    (tmp_path / "cvas" / "steps").mkdir()
    (tmp_path / "cvas" / "steps" / "b.py").write_text("from cvas.core import a\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["cvas.core.a", "cvas.steps.b"]]
    assert "cvas.steps.b" in graph["cvas.core.a"]
def test_no_module_over_500_lines():
    long = sorted(f"{p.relative_to(REPO).as_posix()} ({n} lines)"
                  for p in [*REPO.glob("cvas/**/*.py"), *REPO.glob("tasks/**/*.py")]
                  if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LIMIT)
    assert long == []
