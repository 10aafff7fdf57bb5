"""The two floors: nothing in ledger/ imports Flask or web/, and composio loads lazily."""
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import ledger

ROOT = Path(__file__).resolve().parents[1]


def test_every_ledger_module_imports_with_flask_blocked():
    names = [m.name for m in pkgutil.walk_packages(ledger.__path__, "ledger.")]
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('flask', 'web', 'werkzeug'):\n"
            "            raise ImportError('ledger must not import ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"for n in {names!r}:\n"
            "    __import__(n)\n"
            "assert 'composio' not in sys.modules, 'composio must be imported lazily'\n"
            "print(len(" + repr(names) + "))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 8


def test_creating_the_app_does_not_import_composio(tmp_path):
    code = ("import sys\nfrom web import create_app\n"
            f"create_app({{'DATABASE_URL': 'sqlite:///{tmp_path}/x.db'}})\n"
            "assert 'composio' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


DRIVERS = ("sqlalchemy", "sqlmodel", "psycopg", "sqlite3", "alembic")
# Nothing outside the storage room may build a query: issue 13 emptied this list; keep it empty.
SQL_OUTSIDE_STORAGE: set[str] = set()


def _imports_a_driver(path: Path) -> bool:
    import ast
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n.split(".")[0] in DRIVERS for n in names):
            return True
    return False


def test_only_the_storage_room_speaks_sql():
    speaking = {str(p.relative_to(ROOT)) for pkg in ("ledger", "web") for p in (ROOT / pkg).rglob("*.py")
                if _imports_a_driver(p)}
    outside = {p for p in speaking if not p.startswith("ledger/storage/")}
    assert outside - SQL_OUTSIDE_STORAGE == set(), "SQL belongs in ledger/storage/"
    assert SQL_OUTSIDE_STORAGE - outside == set(), "no longer speaks SQL: take it off the allow-list"
    assert "ledger/storage/sqlite.py" in speaking and "ledger/storage/postgres.py" in speaking


def _modules(*packages: str):
    import ast
    for pkg in packages:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


# The use cases are the only callers of the ledger's one transaction; the Ledger defines it. (The
# storage room's own database transactions, e.g. psycopg's conn.transaction(), are below it.)
TRANSACTION_CALLERS_ALLOWED = ("ledger/services/", "ledger/service.py", "ledger/storage/")


def test_only_the_use_cases_open_a_ledger_transaction():
    import ast
    callers = {name for name, tree in _modules("ledger", "web", "bench") for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "transaction"}
    outside = {c for c in callers if not c.startswith(TRANSACTION_CALLERS_ALLOWED)}
    assert outside == set(), "open a ledger transaction in a use case (ledger/services/), not here"
    assert any(c.startswith("ledger/services/") for c in callers)


# A parameter that takes code to run at a moment of the ledger's work (after a commit, when idle):
# what runs after a commit subscribes to ledger.signals.event_recorded in the composition root.
_CALLBACK = re.compile(r"^(after|before|on)_(commit|write|append|record|recorded|idle)$|^callback$")


def test_no_ledger_function_takes_a_callback_from_outside():
    import ast
    offending = []
    for name, tree in _modules("ledger"):
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                offending += [f"{name}:{node.name}({a.arg})" for a in args if _CALLBACK.match(a.arg)]
    assert offending == [], "no web callback in the ledger: subscribe to event_recorded instead"
