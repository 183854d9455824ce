"""openCryptoki 3.8's soft token, started by the harness: a real second PKCS#11 module.

It has no EC mechanisms and takes user PINs of 4-8 characters, so ``hsm check`` must
refuse it for exactly those reasons, and a ceremony against it must stop at preflight with
the same reasons and leave the token untouched (its PIN still works). With its daemon
down, its module loads but C_Initialize fails: the error must say that, not "wrong path".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from harness import HSM_SIGNER_COMMAND
from hsm_signer.ceremony.config import REHEARSAL_EXAMPLE

pytestmark = pytest.mark.hsm


def hsm_check(module, label, pin):
    return subprocess.run([*HSM_SIGNER_COMMAND, "hsm", "check", "--module", module, "--token-label", label,
                           "--pin-source", "env:OCK_PIN"], env={**os.environ, "OCK_PIN": pin},
                          capture_output=True, text=True, timeout=180)


def logs_in(module, label, pin) -> list[str]:
    """Log in through the module in a process of its own; the key labels on the token."""
    code = textwrap.dedent("""
        import sys
        from hsm_signer.hsm import FixedPin, Hsm
        with Hsm(sys.argv[1], token_label=sys.argv[2], pin_source=FixedPin(sys.argv[3])) as hsm:
            print(",".join(hsm.key_labels()))
    """)
    done = subprocess.run([sys.executable, "-c", code, module, label, pin], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [label for label in done.stdout.strip().split(",") if label]


def test_hsm_check_refuses_opencryptoki_for_no_ec_and_a_short_pin_and_changes_nothing(opencryptoki_token):
    ock, label, pin = opencryptoki_token
    before = logs_in(ock.module, label, pin)
    result = hsm_check(ock.module, label, pin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "NOT READY" in result.stdout
    reasons = result.stderr
    assert "user PIN length: the token accepts user PINs of 4–8 characters; the ceremony sets a 32-character PIN" in reasons
    assert "(checkpoint): mechanisms: the checkpoint key needs CKM_EC_KEY_PAIR_GEN, CKM_ECDSA; the token lacks " \
           "CKM_EC_KEY_PAIR_GEN (to generate), CKM_ECDSA (to sign)" in reasons
    assert "(sealing): mechanisms" in reasons and "CKM_ECDH1_DERIVE (to derive)" in reasons
    assert "(code-hmac)" not in reasons  # what it has, it has: HMAC passes every check
    assert logs_in(ock.module, label, pin) == before  # same PIN, same objects


def test_a_ceremony_on_opencryptoki_stops_at_preflight_with_the_same_reasons(opencryptoki_token, tmp_path):
    ock, label, pin = opencryptoki_token
    result = subprocess.run(
        [*HSM_SIGNER_COMMAND, "ceremony", "run", str(REHEARSAL_EXAMPLE), "--non-interactive",
         "--set", f"hsm.module={ock.module}", "--set", f"hsm.token_label={label}", "--set", "hsm.initialise=false",
         "--set", 'hsm.initial_pin={source = "env", variable = "OCK_INITIAL_PIN"}'],
        cwd=tmp_path, env={**os.environ, "OCK_INITIAL_PIN": pin}, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not fit for the ceremony" in result.stderr and "Nothing was changed" in result.stderr
    assert "accepts user PINs of 4–8 characters" in result.stderr and "lacks CKM_EC_KEY_PAIR_GEN" in result.stderr
    assert "Check before changing anything" in result.stdout
    assert "Split a new user PIN" not in result.stdout  # stopped before the PIN was split
    assert not any(tmp_path.iterdir())  # no bundle, no aborted transcript, no share files
    assert logs_in(ock.module, label, pin) == []  # the initial PIN still works


def test_one_module_through_two_names_is_initialised_once(opencryptoki_token):
    """/usr/lib/.../pkcs11/libopencryptoki.so is a symlink to the library itself."""
    ock, label, pin = opencryptoki_token
    real = os.path.realpath(ock.module)
    other = "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so"
    if not os.path.exists(other) or os.path.realpath(other) != real:
        pytest.skip(f"no second name for {real} on this machine")
    code = textwrap.dedent("""
        import sys
        from hsm_signer.hsm import FixedPin, Hsm
        first = Hsm(sys.argv[1], token_label=sys.argv[3], pin_source=FixedPin(sys.argv[4])).open()
        second = Hsm(sys.argv[2], token_label=sys.argv[3], pin_source=FixedPin(sys.argv[4])).open()
        print(first.random_bytes(8) != second.random_bytes(8))
    """)
    done = subprocess.run([sys.executable, "-c", code, real, other, label, pin], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_with_its_daemon_down_the_error_names_c_initialize_and_the_daemon(opencryptoki_token):
    ock, label, pin = opencryptoki_token
    if not ock.started_pid:
        pytest.skip("pkcsslotd was running before the tests started: not stopping someone else's daemon")
    ock.stop()
    try:
        result = hsm_check(ock.module, label, pin)
    finally:
        ock.start()
    assert result.returncode == 2
    assert "loaded, but C_Initialize returned CKR_" in result.stderr and "pkcsslotd" in result.stderr
    assert "set hsm.module" not in result.stderr  # the path was right
