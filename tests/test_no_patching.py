"""No test and no benchmark changes product code behind its back: dependencies are passed in.

A slow HSM in a benchmark is a signer handed to the service, a race in a test is a storage
handed to it (STYLE.md: "a slow HSM in a benchmark is a Signer object, not a monkey-patch").
This test reads every Python file of ``tests/`` and ``bench/`` and fails on any way of
replacing an attribute of an ``hsm_signer`` module or class: ``monkeypatch.setattr`` /
``delattr``, ``mock.patch`` / ``patch.object``, ``setattr`` / ``delattr``, or assigning to
an attribute reached from an imported ``hsm_signer`` name (``token.PKCS11_LOCK = ...``).
Objects the tests made themselves (a service, a ballot box) are theirs to configure.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for folder in ("tests", "bench") for p in (ROOT / folder).rglob("*.py"))
PRODUCT = "hsm_signer"
PATCHERS = {"setattr", "delattr", "setitem", "delitem"}


def _product_names(tree: ast.AST) -> set[str]:
    """The names a file binds to ``hsm_signer`` modules or to things imported from them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PRODUCT or alias.name.startswith(PRODUCT + "."):
                    names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PRODUCT or node.module.startswith(PRODUCT + "."):
                names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _names_product(node: ast.AST, product: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value == PRODUCT or node.value.startswith(PRODUCT + ".")
    return _root(node) in product


def patches(source: str) -> list[str]:
    """Every place in ``source`` that replaces an attribute of product code, as ``line: text``."""
    tree = ast.parse(source)
    product = _product_names(tree)
    found = []

    def hit(node: ast.AST) -> None:
        found.append(f"{node.lineno}: {ast.unparse(node)}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in PATCHERS | {"patch", "object"} and _names_product(node.args[0], product):
                hit(node)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            flat = [t for target in targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
            if any(isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) in product for t in flat):
                hit(node)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_product_module_or_class_is_patched(path):
    assert patches(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("source", [
    "import hsm_signer.web.api\ndef t(monkeypatch):\n    monkeypatch.setattr(hsm_signer.web.api, 'open_election', f)\n",
    "from hsm_signer import softhsm\ndef t(mp):\n    mp.setattr(softhsm, 'find_module', lambda: None)\n",
    "def t(monkeypatch):\n    monkeypatch.setattr('hsm_signer.audit.PARALLEL_CHECKPOINTS', 2)\n",
    "from hsm_signer.commands import supervise\nsupervise.CHILD_MODULE = 'bench.slow_server'\n",
    "from hsm_signer.hsm import token as t\nt.PKCS11_LOCK = object()\n",
    "from hsm_signer.service import Service\nService.make_sequencer = make\n",
    "from hsm_signer import config\nconfig.DEFAULTS['x'] += 1\n",
    "from unittest import mock\nwith mock.patch('hsm_signer.ballots.time'):\n    pass\n",
    "from unittest import mock\nfrom hsm_signer import ballots\nmock.patch.object(ballots, 'time')\n",
    "import hsm_signer.audit as audit\nsetattr(audit, 'X', 1)\n",
])
def test_every_way_of_patching_is_found(source):
    assert len(patches(source)) == 1, source


@pytest.mark.parametrize("source", [
    "import os\ndef t(monkeypatch):\n    monkeypatch.setattr(os, 'replace', f)\n    monkeypatch.setenv('X', '1')\n",
    "from hsm_signer.service import Service\nservice = Service.open(cfg)\nservice.ballots.receipt_timeout = 1\n",
    "from hsm_signer.signer import SoftwareSigner\nsigner = SoftwareSigner.generate()\n",
])
def test_configuring_objects_the_test_made_is_not_patching(source):
    assert patches(source) == []
