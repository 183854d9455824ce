"""The published key bundle: what the ceremony writes and what every verifier trusts."""

from __future__ import annotations

import json

import pytest

from hsm_signer.bundle import KEYS_VERSION, KeyBundle, KeyEntry
from hsm_signer.errors import FormatError
from hsm_signer.log.note import NoteVerifier, verifier_key
from hsm_signer.signer import ECDSA_P256, ED25519, SoftwareSigner, fingerprint, pem_of

CHECKPOINT_KEY = SoftwareSigner.generate(ECDSA_P256)
TALLY_KEY = SoftwareSigner.generate(ED25519)
OTHER_KEY = SoftwareSigner.generate(ECDSA_P256)


def make_bundle() -> KeyBundle:
    return KeyBundle(
        ceremony_id="rehearsal-2025",
        created="2025-01-31T09:00:00Z",
        keys=(
            KeyEntry.for_signing_key("checkpoint", "ckpt-2025", "01", CHECKPOINT_KEY.public_key_der, "hsm-signer.example/checkpoint"),
            KeyEntry.for_signing_key("tally", "tally-2025", "02", TALLY_KEY.public_key_der, "hsm-signer.example/tally"),
            KeyEntry.for_mac_key("codes-2025", "03"),
        ),
    )


def test_the_ceremony_writes_a_bundle_that_loads_back_identically(tmp_path):
    bundle = make_bundle()
    path = bundle.write(tmp_path / "keys" / "rehearsal-2025")
    assert path.name == "keys.json"
    (path.parent / "transcript.txt").write_text("ceremony transcript\n")  # other files are ignored
    assert KeyBundle.load(path.parent) == bundle
    assert KeyBundle.load(path) == bundle


def test_the_bundle_json_lists_each_key_with_its_public_half():
    obj = json.loads(make_bundle().to_json())
    assert obj["version"] == KEYS_VERSION
    checkpoint, tally, mac = obj["keys"]
    assert checkpoint == {
        "purpose": "checkpoint",
        "algorithm": "ecdsa-p256",
        "label": "ckpt-2025",
        "id": "01",
        "public_key_pem": pem_of(CHECKPOINT_KEY.public_key_der),
        "note_key_name": "hsm-signer.example/checkpoint",
        "note_verifier_key": verifier_key("hsm-signer.example/checkpoint", CHECKPOINT_KEY.public_key_der),
        "fingerprint": fingerprint(CHECKPOINT_KEY.public_key_der),
    }
    assert tally["algorithm"] == "ed25519"
    assert mac == {"purpose": "code-hmac", "algorithm": "hmac-sha256", "label": "codes-2025", "id": "03"}


def test_verifiers_come_from_the_bundle():
    bundle = make_bundle()
    assert bundle.verifier("checkpoint") == NoteVerifier.from_public_key("hsm-signer.example/checkpoint", CHECKPOINT_KEY.public_key_der)
    assert bundle.key("tally").public_key_der == TALLY_KEY.public_key_der
    with pytest.raises(FormatError, match="the code-hmac key does not sign notes"):
        bundle.verifier("code-hmac")
    with pytest.raises(FormatError, match="key bundle solo has no tally key"):
        KeyBundle("solo", "2025-01-31T09:00:00+00:00", make_bundle().keys[:1]).key("tally")


def test_write_never_overwrites_an_existing_bundle(tmp_path):
    make_bundle().write(tmp_path)
    with pytest.raises(FileExistsError):
        make_bundle().write(tmp_path)


def _edited(edit) -> str:
    obj = json.loads(make_bundle().to_json())
    edit(obj)
    return json.dumps(obj)


OTHER_PEM = pem_of(OTHER_KEY.public_key_der)
OTHER_VKEY = verifier_key("hsm-signer.example/checkpoint", OTHER_KEY.public_key_der)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o.update(extra=1), "keys.json: unknown field\\(s\\): extra"),
        (lambda o: o.pop("created"), "keys.json: missing field\\(s\\): created"),
        (lambda o: o.update(version="hsm-signer/keys/v0"), "version: must be 'hsm-signer/keys/v1'"),
        (lambda o: o.update(ceremony_id="Rehearsal 2025"), "ceremony_id: must match"),
        (lambda o: o.update(created="yesterday"), "created: must be an ISO-8601 date and time"),
        (lambda o: o.update(created="2025-01-31T09:00:00"), "created: must include a UTC offset"),
        (lambda o: o.update(keys={}), "keys: must be a list, got dict"),
        (lambda o: o["keys"][0].update(purpose="witness"), "keys\\[0\\].purpose: must be one of checkpoint, tally, code-hmac"),
        (lambda o: o["keys"][0].pop("fingerprint"), "keys\\[0\\]: missing field\\(s\\): fingerprint"),
        (lambda o: o["keys"][0].update(private_key="..."), "keys\\[0\\]: unknown field\\(s\\): private_key"),
        (lambda o: o["keys"][0].update(label=""), "keys\\[0\\].label: must be a non-empty string"),
        (lambda o: o["keys"][0].update(id="0x01"), "keys\\[0\\].id: must be lowercase hex"),
        (lambda o: o["keys"][0].update(algorithm="rsa"), "keys\\[0\\].algorithm: must be one of ecdsa-p256, ed25519"),
        (lambda o: o["keys"][0].update(algorithm="ed25519"), "keys\\[0\\].algorithm: says ed25519 but public_key_pem holds an ecdsa-p256 key"),
        (lambda o: o["keys"][0].update(public_key_pem="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "keys\\[0\\].public_key_pem: is not a PEM public key"),
        (lambda o: o["keys"][0].update(public_key_pem=OTHER_PEM), "keys\\[0\\].note_verifier_key: holds a different public key than public_key_pem"),
        (lambda o: o["keys"][0].update(note_verifier_key=OTHER_VKEY), "keys\\[0\\].note_verifier_key: holds a different public key"),
        (lambda o: o["keys"][0].update(note_verifier_key="x+00000000+AAAA"), "keys\\[0\\].note_verifier_key: "),
        (lambda o: o["keys"][0].update(note_key_name="hsm-signer.example/other"), "keys\\[0\\].note_verifier_key: is for key name 'hsm-signer.example/checkpoint', but note_key_name is 'hsm-signer.example/other'"),
        (lambda o: o["keys"][0].update(note_key_name="two words"), "keys\\[0\\].note_key_name: key name 'two words' must not contain spaces"),
        (lambda o: o["keys"][0].update(fingerprint="00" * 32), "keys\\[0\\].fingerprint: does not match public_key_pem"),
        (lambda o: o["keys"][0].update(fingerprint="AB"), "keys\\[0\\].fingerprint: must be 64 lowercase hex digits"),
        (lambda o: o["keys"][1].update(purpose="checkpoint"), "keys\\[1\\].purpose: duplicate purpose 'checkpoint' \\(already keys\\[0\\]\\)"),
        (lambda o: o["keys"][1].update(note_verifier_key=OTHER_VKEY), "keys\\[1\\].note_verifier_key: holds a different public key"),
        (lambda o: o["keys"][2].update(algorithm="hmac-sha1"), "keys\\[2\\].algorithm: the code-hmac key must be hmac-sha256"),
        (lambda o: o["keys"][2].update(public_key_pem=OTHER_PEM), "keys\\[2\\]: unknown field\\(s\\): public_key_pem"),
        (lambda o: o["keys"].append("key"), "keys\\[3\\]: must be a JSON object, got str"),
    ],
)
def test_a_bad_bundle_is_rejected_naming_the_field(edit, message):
    with pytest.raises(FormatError, match=message):
        KeyBundle.from_json(_edited(edit))


def test_load_names_the_file_in_every_error(tmp_path):
    (tmp_path / "keys.json").write_text(_edited(lambda o: o["keys"][0].update(fingerprint="00" * 32)))
    with pytest.raises(FormatError, match=f"{tmp_path}/keys.json: keys\\[0\\].fingerprint: does not match"):
        KeyBundle.load(tmp_path)
    with pytest.raises(FormatError, match="cannot read key bundle .*missing/keys.json"):
        KeyBundle.load(tmp_path / "missing" / "keys.json")


def test_a_pem_of_an_unknown_key_type_is_a_format_error_not_a_crash():
    from hsm_signer.bundle import _der_of_pem
    from hsm_signer.errors import FormatError

    # A SubjectPublicKeyInfo with an unknown algorithm OID (1.2.3.4): cryptography raises
    # UnsupportedAlgorithm, not ValueError.
    pem = "-----BEGIN PUBLIC KEY-----\nMAswBQYDKgMEAwIAAQ==\n-----END PUBLIC KEY-----\n"
    with pytest.raises(FormatError, match="public_key_pem: is not a PEM public key"):
        _der_of_pem(pem, "public_key_pem")
