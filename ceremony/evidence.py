"""What the transcript must show about every key, judged the same way by the runner and the verifier.

* The security attributes read back from the HSM (:data:`EXPECTED_ATTRIBUTES`).
* The extraction attempts: reading CKA_VALUE and wrapping the key out must be refused.
* The self-test: an HSM-generated nonce signed by the new key, verified with the exported
  public key; the exact message is :func:`self_test_message`. The sealing key (derive
  only) instead derives with a throwaway peer key whose private scalar is recorded, so
  anyone can recompute the shared secret from the published key (:func:`derive_self_test_problems`).

The runner refuses to publish keys that fail these rules; the verifier refuses bundles
whose transcript does not show them. Pure functions: no I/O, and never PKCS#11.
"""

from __future__ import annotations

from typing import Any

#: Attribute values every ceremony key must have, as read back from the token.
EXPECTED_ATTRIBUTES: dict[str, bool] = {
    "token": True,
    "private": True,
    "sensitive": True,
    "extractable": False,
    "local": True,
    "always_sensitive": True,
    "never_extractable": True,
    "sign": True,
    "decrypt": False,
    "unwrap": False,
    "derive": False,
}

#: The sealing key: the same, except that it can only derive (CKM_ECDH1_DERIVE).
SEALING_EXPECTED_ATTRIBUTES: dict[str, bool] = {**EXPECTED_ATTRIBUTES, "sign": False, "derive": True}

REFUSED_PREFIX = "refused"
NOT_ATTEMPTED_PREFIX = "not attempted"


def attribute_problems(attributes: Any, expected: dict[str, bool] = EXPECTED_ATTRIBUTES) -> list[str]:
    """Each attribute that differs from ``expected``, described; empty when all is well."""
    if not isinstance(attributes, dict):
        return ["no attribute record"]
    problems = []
    for name, wanted in expected.items():
        got = attributes.get(name)
        if got is not wanted:
            problems.append(f"CKA_{name.upper()} is {_show(got)}, must be {_show(wanted)}")
    return problems


def extraction_problems(outcomes: Any) -> list[str]:
    """Problems with the recorded extraction attempts ``{"read_value": ..., "wrap": ...}``."""
    if not isinstance(outcomes, dict):
        return ["no extraction attempts recorded"]
    problems = []
    read = outcomes.get("read_value")
    if not (isinstance(read, str) and read.startswith(REFUSED_PREFIX)):
        problems.append(f"reading CKA_VALUE was not refused ({read!r})")
    wrap = outcomes.get("wrap")
    if not (isinstance(wrap, str) and wrap.startswith((REFUSED_PREFIX, NOT_ATTEMPTED_PREFIX))):
        problems.append(f"wrapping the key out was not refused ({wrap!r})")
    return problems


def self_test_message(ceremony_id: str, label: str, nonce_hex: str) -> bytes:
    """The exact bytes a new signing key signs in its self-test."""
    return f"hsm-signer ceremony self-test v1\n{ceremony_id}\n{label}\n{nonce_hex}\n".encode("utf-8")


def derive_self_test_problems(record: Any, sealing_point: bytes) -> list[str]:
    """Check a sealing key's self-test record ``{"peer_private": hex, "peer_point": hex, "dh": hex}``.

    The HSM derived ``dh`` from ``peer_point``; the throwaway peer's private scalar is
    recorded, so ECDH(peer_private, published key) must give the same ``dh``: the HSM
    holds the private half of the published sealing key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(record, dict):
        return ["no derive self-test recorded"]
    try:
        scalar = int(record["peer_private"], 16)
        peer = ec.derive_private_key(scalar, ec.SECP256R1())
        point = bytes.fromhex(record["peer_point"])
        dh = bytes.fromhex(record["dh"])
        published = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sealing_point)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the derive self-test record is malformed ({type(exc).__name__}: {exc})"]
    problems = []
    if peer.public_key().public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint) != point:
        problems.append("peer_point is not the public half of peer_private")
    if peer.exchange(ec.ECDH(), published) != dh:
        problems.append("the derived secret does not match ECDH with the published sealing key")
    return problems


def _show(value: Any) -> str:
    return {True: "true", False: "false", None: "missing"}.get(value, repr(value))
