"""The browser's receipt checker agrees with the Python one on every shared vector.

``web/static/js/verify-core.js`` re-implements, for the voter's browser, what
``hsm_signer.verify`` does. Both run the same vector files (RFC 6962 proofs, upstream
transparency-dev and Go signed-note vectors, RFC 8785 vectors, and the ECDSA / Ed25519
note, checkpoint and receipt vectors of ``tests/vectors/browser-*.json``): the page
``tests/js/vectors.html`` runs them in Debian's Chromium, ``tests/js/python_outcomes.py``
runs them in Python, and each case must come out the same in both, and as the vector
file says.
"""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from js.browser import REPO, chromium, static_server
from js.python_outcomes import VECTORS, expectations, outcomes, vector_files

FILES = vector_files()
EXPECTED = {case: want for rel in FILES for case, want in expectations(rel).items()}
CORE = REPO / "web" / "static" / "js" / "verify-core.js"
ROUTES = {"/static/": REPO / "web" / "static", "/vectors/": VECTORS, "/js/": REPO / "tests" / "js"}


@pytest.fixture(scope="module")
def site():
    with static_server(ROUTES, {"/manifest.json": FILES}) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(site, browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico") else None)
    page.goto(f"{site}/js/vectors.html")
    page.wait_for_function("() => window.vectorsDone === true", timeout=30_000)
    assert page.evaluate("window.vectorsError || null") is None, page.evaluate("window.vectorsError")
    assert not errors, errors
    yield page
    page.close()


@pytest.fixture(scope="module")
def js_outcomes(page) -> dict:
    return page.evaluate("window.vectorResults")


@pytest.fixture(scope="module")
def python_outcomes() -> dict:
    return {case: outcome for rel in FILES for case, outcome in outcomes(rel).items()}


def test_both_implementations_ran_exactly_the_cases_of_every_vector_file(js_outcomes, python_outcomes):
    assert set(js_outcomes) == set(EXPECTED) == set(python_outcomes)
    assert len(EXPECTED) > 300
    # every kind of vector is there, positive and negative
    for marker in ("rfc6962/inclusion/", "rfc6962/consistency/", "upstream/", "signed-note/", "jcs/",
                   "browser-notes.json#note/ecdsa-p256/", "browser-notes.json#note/ed25519/", "browser-receipts.json#"):
        cases = [c for c in EXPECTED if c.startswith(marker)]
        assert any(EXPECTED[c]["valid"] for c in cases) and any(not EXPECTED[c]["valid"] for c in cases), marker


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_vector(case, js_outcomes, python_outcomes):
    """Same outcome, failing step and error code in both; messages are each language's own."""
    want, py, js = EXPECTED[case], python_outcomes[case], js_outcomes[case]
    assert {k: py.get(k) for k in want} == want, f"Python: {py}"
    assert {k: v for k, v in js.items() if k != "message"} == {k: v for k, v in py.items() if k != "message"}, (
        f"\n  Python:  {py}\n  browser: {js}")


def test_failures_are_told_apart_by_their_codes(python_outcomes):
    """The codes are specific: the negative vectors exercise many different ones, each a documented code."""
    codes = {o["code"] for o in python_outcomes.values() if not o["valid"]}
    assert len(codes) >= 20, sorted(codes)
    documented = (REPO / "docs" / "FORMATS.md").read_text(encoding="utf-8")
    assert not [c for c in codes if f"`{c}`" not in documented], "undocumented codes"


def test_the_report_speaks_plainly_at_every_step(page):
    report = page.evaluate("""async () => {
        const core = await import('/static/js/verify-core.js');
        const v = await (await fetch('/vectors/browser-receipts.json')).json();
        const c = v.receipts.find((c) => c.name === 'happy-path/signed-tally');
        return core.verifyReceipt(c.receipt, v.bundles[c.bundle],
                                  {laterCheckpoint: c.later_checkpoint, consistencyProof: c.consistency_proof});
    }""")
    assert report["ok"] and report["failure"] is None
    assert [s["step"] for s in report["steps"]] == [
        "keys", "receipt", "checkpoint", "leaf", "inclusion", "later-checkpoint", "consistency", "tally"]
    messages = " ".join(s["message"] for s in report["steps"])
    assert "Your ballot is in the log at position 2 (of 5 entries" in messages
    assert "The log has only grown since your receipt: the log of 11 entries extends the 5 entries" in messages
    assert "It is counted in the signed tally" in messages
    assert [c["line"] for c in report["steps"][-1]["counts"]] == report["result"]["tally"]


def test_a_rolled_back_log_is_reported_in_plain_words_with_the_reason(page):
    report = page.evaluate("""async () => {
        const core = await import('/static/js/verify-core.js');
        const v = await (await fetch('/vectors/browser-receipts.json')).json();
        const c = v.receipts.find((c) => c.name === 'consistency/rolled-back-log');
        return core.verifyReceipt(c.receipt, v.bundles[c.bundle],
                                  {laterCheckpoint: c.later_checkpoint, consistencyProof: c.consistency_proof});
    }""")
    assert not report["ok"]
    failure = report["failure"]
    assert (failure["step"], failure["kind"]) == ("consistency", "root-mismatch")
    assert failure["message"].startswith("The log has NOT only grown")
    assert re.search(r"Reason: later checkpoint is not consistent .* consistency proof leads to first root [0-9a-f]{64}",
                     failure["message"])
    assert [s["ok"] for s in report["steps"]] == [True] * 6 + [False]


def test_a_browser_without_ed25519_says_so_instead_of_failing_the_receipt(site, browser):
    receipts = json.loads((VECTORS / "browser-receipts.json").read_text(encoding="utf-8"))
    case = next(c for c in receipts["receipts"] if c["name"] == "happy-path/signed-tally")
    with browser.new_context() as context:
        page = context.new_page()
        # Pretend to be a browser whose WebCrypto predates Ed25519.
        page.add_init_script("""(() => {
            const original = crypto.subtle.importKey.bind(crypto.subtle);
            crypto.subtle.importKey = (format, data, algorithm, ...rest) =>
                (algorithm && (algorithm === 'Ed25519' || algorithm.name === 'Ed25519'))
                    ? Promise.reject(new DOMException('Algorithm: Unrecognized name', 'NotSupportedError'))
                    : original(format, data, algorithm, ...rest);
        })()""")
        page.goto(f"{site}/js/vectors.html")
        report = page.evaluate("""async (c) => {
            const core = await import('/static/js/verify-core.js');
            return core.verifyReceipt(c.receipt, c.bundle,
                                      {laterCheckpoint: c.later, consistencyProof: c.proof});
        }""", {"receipt": case["receipt"], "bundle": receipts["bundles"]["a"], "later": case["later_checkpoint"],
               "proof": case["consistency_proof"]})
    # The ECDSA checkpoint still verifies (signature and inclusion); the Ed25519 tally cannot be checked here.
    assert [s["step"] for s in report["steps"] if s["ok"]] == ["keys", "receipt", "checkpoint", "leaf", "inclusion"]
    assert report["failure"]["step"] == "later-checkpoint" and report["failure"]["kind"] == "unsupported"
    assert "This browser cannot check Ed25519 signatures" in report["failure"]["message"]


MODULES = sorted((REPO / "web" / "static" / "js" / "verify").glob("*.js"))


def test_the_checking_modules_import_only_each_other_and_do_no_io():
    assert len(MODULES) >= 8
    for module in [CORE, *MODULES]:
        source = module.read_text(encoding="utf-8")
        for target in re.findall(r"^(?:import|export)\b[^;]*?\bfrom\s+\"([^\"]+)\"", source, re.M | re.S):
            assert re.fullmatch(r"\./(verify/)?[a-z0-9-]+\.js", target), (module.name, target)
            assert (module.parent / target).is_file(), (module.name, target)
        assert not re.search(r"\bimport\(", source), module.name
        for forbidden in ("fetch(", "XMLHttpRequest", "document.", "window.", "eval(", "new Function", "http://", "https://"):
            assert forbidden not in source, (module.name, forbidden)


def test_no_module_imitates_python_wording():
    """Both sides are compared by code, so nothing mimics CPython's repr() or json error texts."""
    for module in [CORE, *MODULES]:
        source = module.read_text(encoding="utf-8")
        for imitation in ("pyRepr", "repr(", "Expecting value", "Expecting ',' delimiter", "utf-8-sig", "NoneType"):
            assert imitation not in source, (module.name, imitation)


def test_the_browser_vectors_are_current_with_their_generator():
    """The generator's deterministic parts (keys, key IDs, Ed25519 signatures) match the committed files."""
    notes = json.loads((VECTORS / "browser-notes.json").read_text(encoding="utf-8"))
    spec = importlib.util.spec_from_file_location("make_browser_vectors", VECTORS / "make_browser_vectors.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = generator.note_vectors()
    assert [c["name"] for c in fresh["notes"]] == [c["name"] for c in notes["notes"]]
    assert fresh["verifier_keys"] == notes["verifier_keys"]
    ed25519 = {c["name"]: c["note"] for c in fresh["notes"] if c["name"].startswith("ed25519/")}
    assert ed25519 == {c["name"]: c["note"] for c in notes["notes"] if c["name"].startswith("ed25519/")}
