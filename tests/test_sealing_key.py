"""The sealing key: derive-only, on a token of its own, opened by m of n tally trustees.

A rehearsal ceremony on real SoftHSM2 tokens makes it; an independent PKCS#11 client
(PyKCS11, its own process) confirms what the token holds; the HSM layer's ECDH agrees with
``cryptography``; the service's own PIN and token cannot use the key; fewer than m
trustees cannot open the token and any m can.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import pykcs11
from hsm_signer.bundle import SEALING, KeyBundle
from hsm_signer.ceremony.verify import verify_bundle_dir
from hsm_signer.errors import HsmConfigError, KeyNotFoundError
from hsm_signer.hsm import FixedPin, Hsm
from hsm_signer.hsm.deriver import BadPeerPointError
from hsm_signer.hsm.manage import generate_sealing_key
from hsm_signer.hsm.shares import ShareError, SharePin, read_share_file
from hsm_signer.softhsm import SoftHsmToken
from test_ceremony_run import quiet, rehearsal_config

from hsm_signer.ceremony.runner import run_ceremony


def point_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


@pytest.fixture(scope="module")
def ceremony(softhsm_conf, tmp_path_factory):
    config = rehearsal_config(softhsm_conf, tmp_path_factory.mktemp("sealing"))
    return config, run_ceremony(config, quiet())


def trustee_pin(result, files) -> str:
    return SharePin(share_files=tuple(files)).get_pin()


def sealing_token(config, pin: str) -> SoftHsmToken:
    return SoftHsmToken(module=config.hsm.module, conf=Path(os.environ["SOFTHSM2_CONF"]),
                        label=config.sealing.token_label, so_pin="not-kept", user_pin=pin)


def test_the_bundle_publishes_the_sealing_key_and_the_hsm_holds_its_private_half(ceremony):
    config, result = ceremony
    entry = result.bundle.key(SEALING)
    assert entry.algorithm == "ecdh-p256" and entry.label == "rehearsal-sealing"
    assert KeyBundle.load(result.bundle_dir).sealing_point() == entry.sealing_point
    assert serialization.load_pem_public_key(entry.public_key_pem.encode()).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) == entry.sealing_point
    hsm = Hsm(config.hsm.module, token_label=config.sealing.token_label,
              pin_source=SharePin(share_files=result.trustee_share_files[:2])).open()
    try:
        deriver = hsm.deriver(entry.label)
        assert deriver.public_key == entry.sealing_point
        peer = ec.generate_private_key(ec.SECP256R1())
        published = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), entry.sealing_point)
        assert deriver.derive(point_of(peer)) == peer.exchange(ec.ECDH(), published)
    finally:
        hsm.close()
    assert verify_bundle_dir(result.bundle_dir)


def test_an_independent_client_sees_a_derive_only_never_extractable_key_on_its_own_token(ceremony):
    config, result = ceremony
    token = sealing_token(config, trustee_pin(result, result.trustee_share_files[1:]))
    seen = {(o["class"], o["label"]): o for o in pykcs11(token, "objects")}
    assert sorted(label for _, label in seen) == ["rehearsal-sealing", "rehearsal-sealing"]  # the pair, nothing else
    key = seen[("private_key", "rehearsal-sealing")]
    assert {k: key[k] for k in ("token", "private", "sensitive", "extractable", "local", "always_sensitive",
                                "never_extractable", "sign", "decrypt", "unwrap", "derive")} == {
        "token": True, "private": True, "sensitive": True, "extractable": False, "local": True,
        "always_sensitive": True, "never_extractable": True, "sign": False, "decrypt": False, "unwrap": False,
        "derive": True}
    assert key["id"] == result.bundle.key(SEALING).id
    assert pykcs11(token, "read-value", "rehearsal-sealing") == {"error": "CKR_ATTRIBUTE_SENSITIVE"}
    wrapped = pykcs11(token, "wrap", "rehearsal-sealing")
    assert "wrapped_length" not in wrapped and wrapped["error"] in ("CKR_KEY_UNEXTRACTABLE", "CKR_KEY_NOT_WRAPPABLE")


def test_the_services_own_login_cannot_use_the_sealing_key(ceremony):
    config, result = ceremony
    signing_token = SoftHsmToken(module=config.hsm.module, conf=Path(os.environ["SOFTHSM2_CONF"]),
                                 label=config.hsm.token_label, so_pin="not-kept", user_pin=result.pin)
    assert "rehearsal-sealing" not in {o["label"] for o in pykcs11(signing_token, "objects")}
    service = Hsm(config.hsm.module, token_label=config.hsm.token_label, pin_source=FixedPin(result.pin)).open()
    try:
        with pytest.raises(KeyNotFoundError, match=r"no private key labelled 'rehearsal-sealing'"):
            service.deriver("rehearsal-sealing")
    finally:
        service.close()
    with pytest.raises(HsmConfigError, match=r"wrong PIN for HSM token 'sealing-cer-"):
        Hsm(config.hsm.module, token_label=config.sealing.token_label, pin_source=FixedPin(result.pin)).open()
    # nor do the share holders' shares rebuild the trustees' PIN
    with pytest.raises(HsmConfigError, match=r"wrong PIN"):
        Hsm(config.hsm.module, token_label=config.sealing.token_label,
            pin_source=SharePin(share_files=result.share_files[:2])).open()


def test_fewer_than_m_trustees_cannot_open_the_token_and_any_m_can(ceremony):
    config, result = ceremony
    files = result.trustee_share_files
    assert [p.name for p in files] == ["trustee-tao-trustee.txt", "trustee-uma-trustee.txt", "trustee-vic-trustee.txt"]
    assert all("SEALING token PIN share" in p.read_text() and "tally trustee" in p.read_text() for p in files)
    for one in files:
        with pytest.raises(ShareError, match=r"fewer than 2 shares: got 1 of the 2 needed"):
            SharePin(share_files=(one,)).get_pin()
    pins = set()
    for pair in itertools.combinations(files, 2):
        hsm = Hsm(config.hsm.module, token_label=config.sealing.token_label,
                  pin_source=SharePin(share_files=pair)).open()
        pins.add(hsm.deriver("rehearsal-sealing").public_key)
        hsm.close()
    assert pins == {result.bundle.key(SEALING).sealing_point}
    assert len({read_share_file(p)[0] for p in files}) == 3


def test_the_deriver_refuses_points_off_the_curve_and_leaves_nothing_on_the_token(tokens):
    token = tokens.new("derive")
    hsm = Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
    try:
        deriver = generate_sealing_key(hsm, "s", b"\x01")
        peer = ec.generate_private_key(ec.SECP256R1())
        good = point_of(peer)
        for bad in (b"", good[:-1], b"\x02" + good[1:33], good[:-1] + bytes([good[-1] ^ 1])):
            with pytest.raises(BadPeerPointError):
                deriver.derive(bad)
        published = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), deriver.public_key)
        many = deriver.derive_many([good, good[:-1] + bytes([good[-1] ^ 1]), point_of(ec.generate_private_key(ec.SECP256R1()))])
        assert many[0] == peer.exchange(ec.ECDH(), published) and many[1] is None and len(many[2]) == 32
        before = pykcs11(token, "objects")
        for _ in range(20):
            deriver.derive(good)
        assert pykcs11(token, "objects") == before  # the derived secrets were session objects, destroyed
    finally:
        hsm.close()


def test_the_service_refuses_to_start_on_a_token_that_holds_the_sealing_key(kit):
    """A ceremony that put the sealing key on the service's own token would let the running
    service open ballots: ``Service.open`` (serve, the sequencer, every official command) refuses."""
    from hsm_signer.bundle import KeyEntry
    from hsm_signer.errors import ConfigError
    from hsm_signer.service import Service

    with Hsm(kit.token.module, token_label=kit.token.label, pin_source=FixedPin(kit.token.user_pin)) as hsm:
        point = generate_sealing_key(hsm, "misplaced-sealing", b"\x09").public_key
    bundle_dir = kit.directory / "keys"
    bundle = KeyBundle.load(bundle_dir)
    with_sealing = KeyBundle(bundle.ceremony_id, bundle.created,
                             (*bundle.keys, KeyEntry.for_sealing_key("misplaced-sealing", "09", point)))
    (bundle_dir / "keys.json").write_text(with_sealing.to_json())
    with pytest.raises(ConfigError, match=r"the service's HSM token holds the sealing key 'misplaced-sealing': the "
                                          r"running service must never be able to open ballots"):
        Service.open(kit.load())
