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
