"""``hsm-signer hsm check`` and ``hsm-signer health`` on real tokens: each story is what an
official would run, through the console script, and the token is read afterwards by the
independent PyKCS11 client to show that nothing on it changed."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from harness import HSM_SIGNER_COMMAND, P11KitServer, build_faulty_module, pykcs11, require, served_by_softhsm
from servicekit import provision

pytestmark = pytest.mark.hsm

P11KIT_PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"


def hsm_signer(*argv, env=None, timeout=180, cwd=None):
    return subprocess.run([*HSM_SIGNER_COMMAND, *argv], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def check(module, token, *extra, env=None):
    return hsm_signer("hsm", "check", "--module", module, "--token-label", token.label,
                      "--pin-source", "env:CHECK_PIN", *extra,
                      env={**token.env(), "CHECK_PIN": token.user_pin, **(env or {})})


def rows(stdout: str) -> dict[str, str]:
    """``check name -> "result  detail"`` from the printed table."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(.*?)\s{2,}(ok|FAIL|warn|skipped)\s{2,}(.*)$", line)
        if match:
            found[match.group(1)] = f"{match.group(2)}  {match.group(3)}"
    return found


def test_softhsm_is_fit_and_the_check_leaves_the_token_as_it_was(tokens):
    token = tokens.new("check")
    before = pykcs11(token, "objects")
    result = check(token.module, token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "READY: every check passed" in result.stdout
    table = rows(result.stdout)
    for key in ("(checkpoint)", "(tally)", "(code-hmac)", "(sealing)"):
        assert table[f"{key}: attributes"].startswith("ok")
        assert table[f"{key}: read CKA_VALUE"].startswith("ok") and "CKR_ATTRIBUTE_SENSITIVE" in table[f"{key}: read CKA_VALUE"]
        assert table[f"{key}: wrap out"].startswith("ok") and "CKM_AES_KEY_WRAP_PAD" in table[f"{key}: wrap out"]
    assert "same secret as cryptography" in table["(sealing): self-test"]
    assert "accepts 4–255 characters" in table["user PIN length"]
    assert pykcs11(token, "objects") == before == []  # throwaway keys were session objects only


def test_softhsm_through_p11_kit_proxy_is_fit(tokens):
    require(os.path.exists(P11KIT_PROXY), "p11-kit-proxy.so is not installed (apt-get install p11-kit-modules)")
    token = tokens.new("proxy")
    result = check(P11KIT_PROXY, token)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PKCS#11 Kit Proxy" in result.stdout or "p11-kit" in result.stdout.lower()


def test_a_token_that_wraps_keys_out_and_denies_cka_local_is_refused(tokens, tmp_path):
    """tests/p11shim/faulty.c in front of SoftHSM, lying the way NSS softokn was measured to."""
    shim = build_faulty_module(tmp_path)
    token = tokens.new("liar")
    result = check(str(shim), token, "--keys", "checkpoint=ecdsa-p256",
                   env={"P11SHIM_MODULE": token.module, "P11SHIM_LIE": "local,wrap"})
    assert result.returncode == 2
    table = rows(result.stdout)
    assert table["(checkpoint): attributes"].startswith("FAIL") and "CKA_LOCAL false" in table["(checkpoint): attributes"]
    assert table["(checkpoint): wrap out"].startswith("FAIL") and "LEAKED" in table["(checkpoint): wrap out"]
    assert "CKM_AES_KEY_WRAP_PAD" in table["(checkpoint): wrap out"]
    assert "NOT fit" in result.stderr and "CKA_LOCAL false" in result.stderr


def test_a_pin_longer_than_the_token_takes_is_refused_before_the_ceremony(tokens):
    token = tokens.new("pinlen")
    result = check(token.module, token, "--keys", "checkpoint=ecdsa-p256", "--pin-length", "300")
    assert result.returncode == 2
    assert "user PIN length: the token accepts user PINs of 4–255 characters; the ceremony sets a 300" in result.stderr


def test_health_makes_every_key_do_its_job(tokens, tmp_path):
    kit = provision(tokens, tmp_path)
    result = hsm_signer("--config", str(kit.config_path), "health")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verifies with the published public key" in result.stdout
    assert "HMAC-SHA256 computed in the HSM" in result.stdout
    assert result.stdout.rstrip().endswith("status ok")


def test_health_names_an_ed25519_tally_key_behind_a_p11kit_server(tokens, tmp_path, p11kit_client_module,
                                                                  p11kit_socket):
    """The p11-kit client offers no CKM_EDDSA: found by health before the poll, not at the tally."""
    kit = provision(tokens, tmp_path, tally_algorithm="ed25519", module=p11kit_client_module)
    server = P11KitServer(served_by_softhsm(kit.token), p11kit_socket).start()
    try:
        result = hsm_signer("--config", str(kit.config_path), "health")
    finally:
        server.stop()
    assert result.returncode == 2, result.stdout + result.stderr
    tally_label = f"{kit.token.label}-tally"
    assert f"tally key '{tally_label}'" in result.stdout and "CKM_EDDSA" in result.stdout
    assert f"checkpoint key '{kit.token.label}-checkpoint': signed in the HSM" in result.stdout


def test_a_ceremony_on_a_token_without_secret_key_generation_stops_at_preflight(tokens, tmp_path):
    """tpm2-pkcs11 generates no secret keys: the code key has no other algorithm, so the
    error names what the token lacks instead of suggesting one; the token's PIN is kept."""
    from hsm_signer.ceremony.config import REHEARSAL_EXAMPLE
    shim = build_faulty_module(tmp_path)
    token = tokens.new("nosecret")
    env = {**token.env(), "P11SHIM_MODULE": token.module, "P11SHIM_HIDE": "0x350", "INITIAL_PIN": token.user_pin}
    workdir = tmp_path / "ceremony"
    workdir.mkdir()
    result = hsm_signer("ceremony", "run", str(REHEARSAL_EXAMPLE), "--non-interactive",
                        "--set", f"hsm.module={shim}", "--set", f"hsm.token_label={token.label}",
                        "--set", "hsm.initialise=false",
                        "--set", 'hsm.initial_pin={source = "env", variable = "INITIAL_PIN"}', env=env, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "lacks CKM_GENERIC_SECRET_KEY_GEN (to generate)" in result.stderr
    assert "there is no other algorithm" in result.stdout and "choose another algorithm" not in result.stdout
    assert "Nothing was changed" in result.stderr and not any(workdir.iterdir())
    assert pykcs11(token, "objects") == []  # logs in with the initial PIN: it was not replaced


def test_hsm_check_from_the_service_configuration_checks_the_bundles_key_kinds(tokens, tmp_path):
    kit = provision(tokens, tmp_path, tally_algorithm="ed25519")
    result = hsm_signer("--config", str(kit.config_path), "hsm", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert table[f"{kit.token.label}-tally: mechanisms"] == "ok  offers CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA"
    assert table[f"{kit.token.label}-codes: self-test"].startswith("ok")
    assert "user PIN length" not in table  # the service's PIN is set already: not asked


def test_hsm_check_of_a_ceremony_checks_its_token_and_its_sealing_token(tokens, tmp_path):
    from hsm_signer.ceremony.config import REHEARSAL_EXAMPLE
    signing, sealing = tokens.new("cer-sign"), tokens.new("cer-seal")
    env = {**signing.env(), "SIGNING_PIN": signing.user_pin, "SEALING_PIN": sealing.user_pin}
    result = hsm_signer("hsm", "check", "--ceremony", str(REHEARSAL_EXAMPLE),
                        "--set", f"hsm.module={signing.module}", "--set", f"hsm.token_label={signing.label}",
                        "--set", "hsm.initialise=false",
                        "--set", 'hsm.initial_pin={source = "env", variable = "SIGNING_PIN"}',
                        "--set", f"sealing.token_label={sealing.label}", "--set", "sealing.initialise=false",
                        "--set", 'sealing.initial_pin={source = "env", variable = "SEALING_PIN"}',
                        env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"== the ceremony's token '{signing.label}'" in result.stdout
    assert f"== the sealing token '{sealing.label}'" in result.stdout
    table = rows(result.stdout)
    assert table["rehearsal-sealing: self-test"].startswith("ok") and "rehearsal-checkpoint: self-test" in table
    assert result.stdout.count("READY: every check passed") == 2
    assert pykcs11(signing, "objects") == [] and pykcs11(sealing, "objects") == []
