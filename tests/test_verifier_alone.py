"""A voter's or auditor's machine: hsm-signer installed with nothing but ``cryptography``.

``pip install hsm-signer`` brings only cryptography (pyproject.toml: the HSM, Flask and the
rest are the ``service`` extra). This test builds the project's wheel, installs it into a
fresh venv without any other dependency, and checks there, on a record and a receipt the
real service made on SoftHSM, that ``hsm-signer audit`` and ``hsm-signer verify`` pass (and
``hsm-signer ceremony verify`` on a bundle a rehearsal ceremony made),
that a command needing the service extra says so in one line, and that the wheel installs
one top-level import name: ``import web`` and ``import ceremony`` fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from hsm_signer.ceremony.runner import run_ceremony
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.record import export_record
from hsm_signer.service import Service

from servicekit import DEMO_ELECTION, open_election, provision
from test_ceremony_run import ScriptedIO, rehearsal_config

REPO = Path(__file__).resolve().parent.parent
ELECTION = DEMO_ELECTION["id"]
#: Left out of the copy the wheel is built from (not part of the package, or large).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "tests", "bench", "demo-state", "state", "build", "*.egg-info",
                                    "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")


@pytest.fixture(scope="module")
def election(tokens, tmp_path_factory):
    """A closed, tallied, exported election and one voter's receipt, made by the real service."""
    base = tmp_path_factory.mktemp("alone")
    kit = provision(tokens, base / "state")
    service = Service.open(kit.load(), with_sequencer=True).start()
    try:
        codes = open_election(service, 3)
        receipts = [service.ballots.cast(ELECTION, code, {"leader": ["alice"], "board": ["dan"]}).receipt for code in codes]
        close_poll(service, ELECTION)
        tally_election(service, ELECTION)
        export_record(service.storage, kit.load().key_bundle, ELECTION, base / "record")
    finally:
        service.close()
    receipt = base / "receipt.json"
    receipt.write_text(receipts[1].to_json(), encoding="utf-8")
    return base / "record", receipt, kit.directory / "keys"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding the project's wheel (installed --no-deps) and cryptography only."""
    base = tmp_path_factory.mktemp("venv")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)], timeout=600)
    (wheel,) = wheels.glob("hsm_signer-*.whl")
    env_dir = base / "env"
    _run([sys.executable, "-m", "venv", str(env_dir)], timeout=300)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # cryptography at the version under test, with what cryptography itself needs (cffi)
    _run([*pip, f"cryptography=={metadata.version('cryptography')}"], timeout=600)
    _run([*pip, "--no-deps", str(wheel)], timeout=300)
    return env_dir


def _run(command: list[str], *, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False,
                          env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HSM_SIGNER_CONFIG")})
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done


def installed(venv: Path) -> set[str]:
    out = _run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], timeout=120).stdout
    return {item["name"].lower() for item in json.loads(out)}


def test_the_venv_holds_only_the_project_and_cryptography(venv):
    # pip (and setuptools on Python 3.11) come with every venv; cffi and pycparser with cryptography
    assert installed(venv) - {"pip", "setuptools"} == {"hsm-signer", "cryptography", "cffi", "pycparser"}


def test_audit_and_verify_pass_with_only_cryptography_installed(venv, election):
    record, receipt, keys = election
    script = str(venv / "bin" / "hsm-signer")
    audit = _run([script, "audit", str(record), "--keys", str(keys)], timeout=300, cwd=venv)
    assert f"PASS: election {ELECTION}: 3 entries" in audit.stdout
    verify = _run([script, "verify", str(receipt), "--keys", str(keys)], timeout=120, cwd=venv)
    assert verify.stdout.startswith(f"OK: election {ELECTION}: ballot ") and " is leaf 1 of log " in verify.stdout


def test_a_ceremony_bundle_verifies_there(venv, softhsm_conf, tmp_path_factory):
    result = run_ceremony(rehearsal_config(softhsm_conf, tmp_path_factory.mktemp("ceremony")), ScriptedIO())
    done = _run([str(venv / "bin" / "hsm-signer"), "ceremony", "verify", str(result.bundle_dir)], timeout=120, cwd=venv)
    assert "VERIFIED: every check passed for ceremony" in done.stdout


def test_a_tampered_receipt_still_fails_there(venv, election, tmp_path):
    _, receipt, keys = election
    doc = json.loads(receipt.read_text())
    doc["leaf_index"] = 0
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    done = subprocess.run([str(venv / "bin" / "hsm-signer"), "verify", str(forged), "--keys", str(keys)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "FAILED" in done.stderr


def test_a_service_command_names_the_extra_it_needs(venv):
    done = subprocess.run([str(venv / "bin" / "hsm-signer"), "hsm", "check", "--module", "/nonexistent.so",
                           "--token-label", "x"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install 'hsm-signer[service]'" in done.stderr and "Traceback" not in done.stderr


def test_the_wheel_installs_one_top_level_name(venv):
    python = str(venv / "bin" / "python")
    for name in ("web", "ceremony"):
        done = subprocess.run([python, "-c", f"import {name}"], capture_output=True, text=True, timeout=60,
                              cwd=venv, check=False)
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, (name, done.stderr)
    code = ("import importlib.metadata as m; d = m.distribution('hsm-signer'); "
            "print(sorted({str(f).split('/')[0] for f in d.files if not str(f).startswith('..')})); "
            "print(d.read_text('top_level.txt').split())")
    out = _run([python, "-c", code], timeout=60, cwd=venv).stdout.splitlines()
    assert out[0] == str(["hsm_signer", "hsm_signer-0.1.0.dist-info"])
    assert out[1] == str(["hsm_signer"])
    # hsm_signer.web needs Flask (the service extra): its files are there, under the one name
    site = Path(_run([python, "-c", "import hsm_signer, os; print(os.path.dirname(hsm_signer.__file__))"],
                     timeout=60, cwd=venv).stdout.strip())
    assert (site / "web" / "__init__.py").is_file() and (site / "ceremony" / "verify.py").is_file()
    assert (site / "web" / "templates").is_dir() and (site / "ceremony" / "examples").is_dir()
