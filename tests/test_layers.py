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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node, module: str, is_package: bool, known: set) -> list[str]:
    """The modules of `known` that one import statement names (inside a function too)."""
    import ast
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
    return found or ([target] if target in known else [])


def import_graph(package: str) -> dict[str, set]:
    """Module -> the modules of `package` it imports, read statically from the source."""
    import ast
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in ast.walk(ast.parse(path.read_text(), str(path)))
                         for t in _imported(node, module, is_package, set(files)) if t != module}
    return graph


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_web_modules():
    # Imports inside functions count too: a cycle hidden in a function body is still a cycle.
    graph = import_graph("web")
    assert "web.blueprints.connections" in graph and graph["web.cli"]
    assert cycles(graph) == []


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


# camelCase is the HTTP answers' spelling, and only the web spells it (web/schemas/'s models
# turn a use case's snake_case domain value into its answer). The ledger may write a camelCase
# string only where it speaks someone else's wire format, named here with why.
_CAMEL = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)+$")
CAMEL_IN_LEDGER_ALLOWED = {
    ("ledger/gateway.py", "authScheme"),  # Composio's own field in an API-key connection's state
}


def test_the_ledger_builds_no_camel_case_answer_keys():
    import ast
    found = {(name, node.value) for name, tree in _modules("ledger") for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CAMEL.match(node.value)}
    assert found - CAMEL_IN_LEDGER_ALLOWED == set(), "use cases return domain values; web/schemas/ shapes answers"
    assert CAMEL_IN_LEDGER_ALLOWED <= found, "an allowance no longer needed: remove it"


def test_the_camel_case_check_sees_an_answer_key():
    import ast
    tree = ast.parse('answer = {"connectionId": cid, "purge_at": at}')
    assert [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and _CAMEL.match(str(n.value))] == ["connectionId"]


def test_only_the_composition_root_subscribes_to_what_the_ledger_records():
    import ast
    subscribers = sorted({name for name, tree in _modules("ledger", "web") for node in ast.walk(tree)
                          if isinstance(node, ast.Attribute) and node.attr == "connect"
                          and isinstance(node.value, ast.Name) and node.value.id == "event_recorded"})
    assert subscribers == ["web/bootstrap.py"]
