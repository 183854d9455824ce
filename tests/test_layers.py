"""The layers of DESIGN.md hold: checked by import-linter, and by importing what auditors run.

The contracts are in pyproject.toml (``[tool.importlinter]``); ``.ci/run`` checks them too,
as it runs ruff and mypy, which the README's test command runs here as well.
import-linter reads the source, so it cannot see that importing a submodule runs its
package's ``__init__`` first; the second test imports the pure modules in a fresh
interpreter and looks at what came along.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from harness import require

REPO = Path(__file__).resolve().parent.parent

#: What only the service extra installs: none of it may come with reading or verifying.
SERVICE_ONLY = ("pkcs11", "flask", "flask_limiter", "flask_babel", "babel", "werkzeug", "segno", "shamir_mnemonic",
                "gunicorn")


def test_the_layer_contracts_hold():
    require(importlib.util.find_spec("importlinter") is not None,
            "import-linter is not installed (pip install -e '.[test]')")
    run = subprocess.run([sys.executable, str(REPO / ".ci" / "as_installed.py"), "lint-imports"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_reading_a_config_and_verifying_import_no_service_library():
    modules = ["hsm_signer.config", "hsm_signer.verify", "hsm_signer.audit", "hsm_signer.record",
               "hsm_signer.bundle", "hsm_signer.ceremony.verify", "hsm_signer.cli"]
    code = (f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
            "from hsm_signer.cli import build_parser\nbuild_parser()\n"
            f"print(' '.join(sorted(m for m in {SERVICE_ONLY!r} if m in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"imported by reading a config or verifying: {run.stdout.strip()}"


def _tool(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_ruff_finds_nothing():
    require(importlib.util.find_spec("ruff") is not None, "ruff is not installed (pip install -e '.[test]')")
    run = _tool("-m", "ruff", "check", "--no-cache", ".")
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_finds_nothing():
    require(importlib.util.find_spec("mypy") is not None, "mypy is not installed (pip install -e '.[test]')")
    run = _tool(str(REPO / ".ci" / "as_installed.py"), "mypy")
    assert run.returncode == 0, run.stdout + run.stderr
