"""Invariant 9: an operation that changes the token runs once, whatever the module answers.

The token is a real SoftHSM token behind ``p11shim/faulty.c``, a PKCS#11 module that fails
the first key generation (or PIN change, or destruction) with the return code a test asks
for and logs every such call: the calls are counted at the module, not in Python. Each case
runs in its own process (the shim loads SoftHSM once per process, like any module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness import build_faulty_module, pykcs11

pytestmark = pytest.mark.hsm

CKR_GENERAL_ERROR = "0x5"
CKR_FUNCTION_FAILED = "0x6"
CKR_DEVICE_ERROR = "0x30"

# Runs in a child process: open the token through the faulty module, do ONE operation
# through the product's HSM layer, then read the token; print what happened as JSON.
_CHILD = textwrap.dedent('''
    import json, sys
    from hsm_signer.errors import TokenChangeFailedError
    from hsm_signer.hsm import FixedPin, Hsm
    from hsm_signer.hsm.manage import destroy_key, generate_mac_key, generate_signing_key
    from hsm_signer.hsm.probe import change_user_pin
    module, label, pin, operation, key = sys.argv[1:6]
    hsm = Hsm(module, token_label=label, pin_source=FixedPin(pin)).open()
    do = {
        "generate-ec": lambda: generate_signing_key(hsm, key, b"\\x01", "ecdsa-p256"),
        "generate-mac": lambda: generate_mac_key(hsm, key, b"\\x02"),
        "set-pin": lambda: change_user_pin(hsm, pin, pin + "-new"),
        "destroy": lambda: destroy_key(hsm, key),
    }[operation]
    outcome = {}
    try:
        do()
        outcome["result"] = "done"
    except TokenChangeFailedError as exc:
        outcome.update(result="failed", message=str(exc), return_code=exc.return_code)
    outcome["available_after"] = hsm.available
    outcome["labels_after"] = hsm.key_labels()  # a read right after: the token is not down
    outcome["available_after_read"] = hsm.available
    print(json.dumps(outcome))
''')


@pytest.fixture(scope="module")
def faulty_module(tmp_path_factory):
    return build_faulty_module(tmp_path_factory.mktemp("shim"))


def _run_once(faulty_module, token, tmp_path, operation, key, fail):
    log = tmp_path / "calls.log"
    env = {**os.environ, **token.env(), "P11SHIM_MODULE": token.module, "P11SHIM_FAIL": fail,
           "P11SHIM_LOG": str(log)}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(faulty_module), token.label, token.user_pin,
                            operation, key], env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    calls = log.read_text().split() if log.exists() else []
    return json.loads(child.stdout), calls


@pytest.mark.parametrize("fail, code", [(f"C_GenerateKeyPair={CKR_GENERAL_ERROR}x1", "CKR_GENERAL_ERROR"),
                                        (f"C_GenerateKeyPair={CKR_DEVICE_ERROR}x1", "CKR_DEVICE_ERROR")])
def test_a_key_generation_that_fails_once_is_asked_once_and_names_the_return_code(
        faulty_module, tokens, tmp_path, fail, code):
    token = tokens.new("faulty")
    outcome, calls = _run_once(faulty_module, token, tmp_path, "generate-ec", "tally-key", fail)
    assert outcome["result"] == "failed"
    assert calls.count("C_GenerateKeyPair") == 1          # never repeated...
    assert calls.count("C_Initialize") == 1               # ...nor after re-initialising the module
    assert outcome["return_code"] == code and code in outcome["message"]
    assert "not repeated" in outcome["message"] and "retried automatically" not in outcome["message"]
    assert "tally-key" not in outcome["labels_after"] and outcome["available_after_read"]
    assert not [o for o in pykcs11(token, "objects") if o["label"] == "tally-key"]  # no second key


def test_hmac_key_generation_pin_change_and_destruction_are_asked_once_too(faulty_module, tokens, tmp_path):
    token = tokens.new("faulty")
    outcome, calls = _run_once(faulty_module, token, tmp_path, "generate-mac", "code-key",
                               f"C_GenerateKey={CKR_FUNCTION_FAILED}x1")
    assert (outcome["return_code"], calls.count("C_GenerateKey")) == ("CKR_FUNCTION_FAILED", 1)

    (tmp_path / "calls.log").unlink()
    outcome, calls = _run_once(faulty_module, token, tmp_path, "set-pin", "-", f"C_SetPIN={CKR_GENERAL_ERROR}x1")
    assert (outcome["return_code"], calls.count("C_SetPIN")) == ("CKR_GENERAL_ERROR", 1)
    assert pykcs11(token, "objects") == []  # the old PIN still logs in: nothing changed

    (tmp_path / "calls.log").unlink()
    assert _run_once(faulty_module, token, tmp_path, "generate-ec", "doomed", "")[0]["result"] == "done"
    (tmp_path / "calls.log").unlink()
    outcome, calls = _run_once(faulty_module, token, tmp_path, "destroy", "doomed",
                               f"C_DestroyObject={CKR_GENERAL_ERROR}x1")
    assert (outcome["return_code"], calls.count("C_DestroyObject")) == ("CKR_GENERAL_ERROR", 1)
    assert "doomed" in outcome["labels_after"]


def test_through_the_faulty_module_a_healthy_generation_works(faulty_module, tokens, tmp_path):
    """The shim itself forwards faithfully: the failures above are the ones asked for."""
    token = tokens.new("faulty")
    outcome, calls = _run_once(faulty_module, token, tmp_path, "generate-ec", "fine", "")
    assert outcome["result"] == "done" and "fine" in outcome["labels_after"]
    assert calls.count("C_GenerateKeyPair") == 1
