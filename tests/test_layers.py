"""The two floors: nothing in ledger/ imports Flask or web/, and composio loads lazily."""
import pkgutil
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
