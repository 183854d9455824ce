"""``ceremony verify``: a genuine bundle passes; any changed byte, and every forged or rewritten part,
fails with a message naming what is wrong. Retirement bundles likewise.

Forgeries that rewrite the transcript are re-chained and re-signed with the real HSM keys
(``forge``), so they test the checks of content, not just the signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.ceremony import evidence
from hsm_signer.ceremony.retire import run_retirement
from hsm_signer.ceremony.retire_config import parse_retire_config
from hsm_signer.ceremony.transcript import head_groups
from hsm_signer.ceremony.runner import run_ceremony
from hsm_signer.ceremony.signatures import sign_head
from hsm_signer.ceremony.summary import ceremony_summary, retirement_summary
from hsm_signer.ceremony.transcript import GENESIS, head_statement, parse_transcript, transcript_head
from hsm_signer.ceremony.checks import read_bundle_dir
from hsm_signer.ceremony.verify import verify_bundle_dir
from hsm_signer.ceremony.verify_ceremony import verify_bundle_files
from hsm_signer.ceremony.verify_retirement import verify_retirement_files
from hsm_signer.bundle import KeyBundle, KeyEntry
from hsm_signer.canonical import canonicalize
from hsm_signer.errors import ConfigError, FormatError, HsmConfigError, VerificationError
from hsm_signer.hsm import FixedPin, Hsm
from test_ceremony_run import objects, quiet, rehearsal_config, ScriptedIO

FILES = ("keys.json", "transcript.jsonl", "transcript.sig.json", "SUMMARY.md")


@pytest.fixture(scope="module")
def ceremony(softhsm_conf, tmp_path_factory):
    """An interactive ceremony (witness attestations included) and its bundle files."""
    config = rehearsal_config(softhsm_conf, tmp_path_factory.mktemp("verify"))
    result = run_ceremony(config, ScriptedIO())
    return config, result, read_bundle_dir(result.bundle_dir)


@pytest.fixture(scope="module")
def signers(ceremony):
    config, result, _ = ceremony
    hsm = Hsm(config.hsm.module, token_label=config.hsm.token_label, pin_source=FixedPin(result.pin)).open()
    yield {k.label: hsm.signer(k.label) for k in result.bundle.keys if k.is_signing_key}
    hsm.close()


def chain(entries: list[dict], *, fix_attestations: bool = False) -> bytes:
    """Re-chain ``entries``; with ``fix_attestations`` also rewrite what the witnesses attested."""
    out, prev = b"", GENESIS
    for seq, entry in enumerate(entries):
        if fix_attestations and entry["step"] == "witness-attestation" and "attested_head" in entry["data"]:
            entry["data"]["attested_head"] = prev
        line = canonicalize({**entry, "seq": seq, "prev": prev}) + b"\n"
        out += line
        prev = hashlib.sha256(line).hexdigest()
    return out


def entries_of(files) -> list[dict]:
    return [json.loads(line) for line in files["transcript.jsonl"].splitlines()]


def forge(files, signers, change, *, keys_json: bytes | None = None, fix_attestations: bool = True) -> dict[str, bytes]:
    """Apply ``change`` to the transcript entries, re-chain, re-sign with the real keys, re-summarise."""
    entries = entries_of(files)
    change(entries)
    raw = chain(entries, fix_attestations=fix_attestations)
    parsed = parse_transcript(raw)
    head = transcript_head(raw)
    new = dict(files)
    if keys_json is not None:
        new["keys.json"] = keys_json
    bundle = KeyBundle.from_json(new["keys.json"])
    new["transcript.jsonl"] = raw
    new["transcript.sig.json"] = sign_head(bundle.ceremony_id, len(parsed), head,
                                           [(k, signers[k.label]) for k in bundle.keys if k.is_signing_key])
    new["SUMMARY.md"] = ceremony_summary(parsed, head).encode("utf-8")
    return new


def step(entries: list[dict], name: str, n: int = 0) -> dict:
    return [e for e in entries if e["step"] == name][n]


def fails(files, match: str) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as caught:
        verify_bundle_files(files)
    return caught.value


# --- the genuine bundle ---------------------------------------------------------------------

def test_the_genuine_bundle_verifies_with_a_readable_report(ceremony):
    config, result, files = ceremony
    report = verify_bundle_dir(result.bundle_dir)
    text = report.text()
    assert text.splitlines()[0].startswith("ceremony bundle rehearsal")
    # The one head witnesses copy at the close, in the same short groups the ceremony showed.
    grouped = head_groups(result.transcript_head)
    assert re.fullmatch(r"([0-9a-f]{4} ){7}[0-9a-f]{4}\n([0-9a-f]{4} ){7}[0-9a-f]{4}", grouped)
    assert text.endswith("Transcript head (witnesses: compare with the head you wrote down at the close):\n"
                         + "\n".join(f"  {line}" for line in grouped.splitlines())
                         + "\nVERIFIED: every check passed for ceremony rehearsal")
    for expected in ("hash chain intact", "all 31 steps of a complete ceremony",
                     "sealing key rehearsal-sealing: made inside the HSM and kept there, secret from the first "
                     "moment, can never be exported, used only for deriving secrets (CKA_TOKEN, CKA_PRIVATE, "
                     "CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL true; CKA_EXTRACTABLE "
                     "false; CKA_DERIVE only)",
                     "sealing key rehearsal-sealing: the recorded derive self-test recomputes with the published key",
                     "sealing token sealing-cer-", "PIN split 2-of-3 among the tally trustees (none a share holder); "
                     "2 shares (Tao Trustee, Uma Trustee) activated it",
                     "checkpoint key rehearsal-checkpoint: made inside the HSM and kept there",
                     "the HSM refused to show the secret key and refused to export it wrapped under another key "
                     "(reading CKA_VALUE, C_WrapKey)",
                     "self-test signature verifies with the published key",
                     "keys.json: exactly the file exported in the ceremony (4 keys)",
                     "user PIN split 2-of-3 (SLIP-39)", "witnesses Wyn Witness attested the transcript head",
                     "transcript head signed by the tally key rehearsal-tally (ed25519",
                     "SUMMARY.md: matches the transcript", "VERIFIED"):
        assert expected in text


def test_forging_without_a_change_still_verifies(ceremony, signers):
    """The forging helper itself is sound, so the failures below come from the change alone."""
    _, _, files = ceremony
    verify_bundle_files(forge(files, signers, lambda entries: None))


# --- any changed byte -------------------------------------------------------------------------

BITS = (0x01, 0x02, 0x20, 0x80)
#: Set CEREMONY_EXHAUSTIVE=1 to flip every bit pattern of every byte (takes minutes; run before releases).
EXHAUSTIVE = bool(os.environ.get("CEREMONY_EXHAUSTIVE"))


def flips(data: bytes, samples: int):
    """Single-bit changes spread over ``data`` (every byte of the last 200, ``samples`` elsewhere)."""
    stride = 1 if EXHAUSTIVE else max(1, len(data) // samples)
    positions = sorted(set(range(0, len(data), stride)) | set(range(max(0, len(data) - 200), len(data))))
    for position in positions:
        for bit in (BITS if EXHAUSTIVE else (BITS[position % len(BITS)],)):
            mutated = bytearray(data)
            mutated[position] ^= bit
            yield position, bit, bytes(mutated)


@pytest.mark.parametrize("name", FILES)
def test_any_changed_byte_fails_and_names_the_file(ceremony, name):
    _, _, files = ceremony
    for position, bit, mutated in flips(files[name], 250):
        try:
            verify_bundle_files({**files, name: mutated})
        except VerificationError as exc:
            assert (name if name != "transcript.jsonl" else "transcript") in str(exc), (position, str(exc))
        else:
            pytest.fail(f"{name}: flipping bit {bit:#x} of byte {position} was not detected")


# --- the transcript ---------------------------------------------------------------------------

def test_a_removed_line_is_named(ceremony):
    _, _, files = ceremony
    lines = files["transcript.jsonl"].splitlines(keepends=True)
    fails({**files, "transcript.jsonl": b"".join(lines[:5] + lines[6:])},
          r"transcript.jsonl line 6 has seq 6, expected 5: entries were removed, added or reordered")


def test_swapped_lines_are_named(ceremony):
    _, _, files = ceremony
    lines = files["transcript.jsonl"].splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    fails({**files, "transcript.jsonl": b"".join(lines)}, r"transcript.jsonl line 4 has seq 4, expected 3")


def test_a_truncated_transcript_is_named(ceremony):
    _, _, files = ceremony
    lines = files["transcript.jsonl"].splitlines(keepends=True)
    fails({**files, "transcript.jsonl": b"".join(lines[:-1])}, r"transcript.jsonl ends early: 30 entries, the script has 31")
    fails({**files, "transcript.jsonl": files["transcript.jsonl"][:-1]}, r"transcript.jsonl does not end with a newline")
    fails({**files, "transcript.jsonl": b""}, r"transcript.jsonl is empty")


def test_an_appended_chained_entry_is_named(ceremony):
    _, _, files = ceremony
    entries = entries_of(files) + [{"seq": 0, "time": "2030-01-01T00:00:00Z", "step": "key-generated",
                                    "actor": "Mallory", "data": {}, "prev": ""}]
    fails({**files, "transcript.jsonl": chain(entries)}, r"transcript.jsonl has extra entries: 32 entries")


def test_a_rewritten_and_rechained_transcript_does_not_match_the_signed_head(ceremony):
    _, _, files = ceremony
    entries = entries_of(files)
    entries[-1]["data"]["bundle"] = "elsewhere"
    fails({**files, "transcript.jsonl": chain(entries)},
          r"transcript.sig.json: the signed head '[0-9a-f]{64}' is not the transcript's head")


def test_a_rewritten_and_rechained_transcript_contradicts_what_the_witnesses_attested(ceremony):
    _, _, files = ceremony
    entries = entries_of(files)
    entries[2]["data"]["python"] = "9.9.9"
    fails({**files, "transcript.jsonl": chain(entries)},
          r"line 30 \(witness-attestation\): Wyn Witness attested head [0-9a-f]{64}, but the transcript's head at that moment was")


def test_a_reformatted_line_is_not_canonical(ceremony):
    _, _, files = ceremony
    lines = files["transcript.jsonl"].splitlines(keepends=True)
    lines[1] = json.dumps(json.loads(lines[1]), indent=None).encode() + b"\n"
    fails({**files, "transcript.jsonl": b"".join(lines)}, r"transcript.jsonl line 2 is not in canonical JSON form")


# --- re-signed forgeries: the content checks ---------------------------------------------------

FORGERIES = {
    "extractable-key": (lambda e: step(e, "key-generated")["data"]["attributes"].update(extractable=True),
                        r"line 11 \(key-generated\): key 'rehearsal-checkpoint': CKA_EXTRACTABLE is true, must be false"),
    "not-local": (lambda e: step(e, "key-generated", 1)["data"]["attributes"].update(local=False),
                  r"key 'rehearsal-tally': CKA_LOCAL is false, must be true"),
    "not-always-sensitive": (lambda e: step(e, "key-generated", 2)["data"]["attributes"].update(always_sensitive=False),
                             r"key 'rehearsal-code-hmac': CKA_ALWAYS_SENSITIVE is false, must be true"),
    "session-object": (lambda e: step(e, "key-generated")["data"]["attributes"].update(token=False),
                       r"CKA_TOKEN is false, must be true"),
    "missing-attribute": (lambda e: step(e, "key-generated")["data"]["attributes"].pop("never_extractable"),
                          r"CKA_NEVER_EXTRACTABLE is missing, must be true"),
    "can-decrypt": (lambda e: step(e, "key-generated")["data"]["attributes"].update(decrypt=True),
                    r"CKA_DECRYPT is true, must be false"),
    "wrong-id": (lambda e: step(e, "key-generated")["data"]["attributes"].update(id="00"),
                 r"CKA_ID read back is not the key id"),
    "value-leaked": (lambda e: step(e, "extraction-attempts")["data"].update(read_value="LEAKED: 32 bytes"),
                     r"\(extraction-attempts\): key 'rehearsal-checkpoint': reading CKA_VALUE was not refused"),
    "wrapped-out": (lambda e: step(e, "extraction-attempts", 2)["data"].update(wrap="LEAKED"),
                    r"key 'rehearsal-code-hmac': wrapping the key out was not refused"),
    "self-test-other-nonce": (lambda e: step(e, "self-test")["data"].update(nonce="00" * 32),
                              r"\(self-test\): the self-test signature of 'rehearsal-checkpoint' does not verify"),
    "self-test-swapped": (lambda e: step(e, "self-test", 1)["data"].update(
        signature=step(e, "self-test")["data"]["signature"]), r"self-test signature of 'rehearsal-tally' does not verify"),
    "self-test-other-key": (lambda e: step(e, "self-test")["data"].update(label="rehearsal-tally"),
                            r"\(self-test\): is about another key than 'rehearsal-checkpoint'"),
    "no-activation-test": (lambda e: e.remove(step(e, "activation-test")),
                           r"line 10: step is 'key-generated', expected 'activation-test'"),
    "activation-by-one": (lambda e: step(e, "activation-test")["data"].update(holders=["Kim Holder"], shares_used=1),
                          r"\(activation-test\): the activation test must use at least 2 distinct"),
    "activation-by-outsider": (lambda e: step(e, "activation-test")["data"].update(holders=["Kim Holder", "Mallory"]),
                               r"the activation test must use at least 2 distinct share holders"),
    "split-one-of-three": (lambda e: step(e, "pin-split")["data"].update(threshold=1),
                           r"\(pin-split\): the PIN split is not 2-of-3 as configured"),
    "share-to-wrong-holder": (lambda e: step(e, "share-handed-over", 1)["data"].update(holder="Sam Holder"),
                              r"\(share-handed-over\): expected share 2 handed to Kim Holder"),
    "witness-attests-other-head": (lambda e: step(e, "witness-attestation")["data"].update(attested_head="0" * 64),
                                   r"Wyn Witness attested head 0{64}, but the transcript's head at that moment was"),
    "witness-missing": (lambda e: e.remove(step(e, "witness-attestation")),
                        r"step is 'ceremony-closed', expected 'witness-attestation'"),
    "aborted-then-closed": (lambda e: e.insert(-1, {**e[-1], "step": "ceremony-aborted"}),
                            r"step is 'ceremony-aborted', expected 'ceremony-closed'"),
    "other-ceremony": (lambda e: e[0]["data"]["config"].update(ceremony_id="other"),
                       r"line 1 \(ceremony-opened\): the recorded configuration is of another ceremony"),
    "keys-json-hash": (lambda e: step(e, "public-keys-exported")["data"].update(sha256="0" * 64),
                       r"keys.json is not byte for byte the file exported in the ceremony"),
    "sealing-key-can-sign": (lambda e: step(e, "key-generated", 3)["data"]["attributes"].update(sign=True),
                             r"key 'rehearsal-sealing': CKA_SIGN is true, must be false"),
    "sealing-key-cannot-derive": (lambda e: step(e, "key-generated", 3)["data"]["attributes"].update(derive=False),
                                  r"key 'rehearsal-sealing': CKA_DERIVE is false, must be true"),
    "sealing-key-extractable": (lambda e: step(e, "key-generated", 3)["data"]["attributes"].update(extractable=True),
                                r"key 'rehearsal-sealing': CKA_EXTRACTABLE is true, must be false"),
    "sealing-value-leaked": (lambda e: step(e, "extraction-attempts", 3)["data"].update(read_value="LEAKED: 32 bytes"),
                             r"key 'rehearsal-sealing': reading CKA_VALUE was not refused"),
    "sealing-self-test-other-secret": (lambda e: step(e, "self-test", 3)["data"].update(dh="00" * 32),
                                       r"sealing key 'rehearsal-sealing': the derived secret does not match ECDH"),
    "sealing-self-test-other-peer": (lambda e: step(e, "self-test", 3)["data"].update(
        peer_private="01".rjust(64, "0")), r"peer_point is not the public half of peer_private"),
    "sealing-activation-by-one": (lambda e: step(e, "sealing-activation-test")["data"].update(
        holders=["Uma Trustee"], shares_used=1), r"the sealing activation test must use at least 2 distinct trustees"),
    "sealing-activation-by-share-holder": (lambda e: step(e, "sealing-activation-test")["data"].update(
        holders=["Kim Holder", "Lee Holder"]), r"the sealing activation test must use at least 2 distinct trustees"),
    "sealing-split-to-share-holders": (lambda e: step(e, "sealing-pin-split")["data"].update(
        holders=[{"index": 1, "holder": "Sam Holder"}, {"index": 2, "holder": "Kim Holder"},
                 {"index": 3, "holder": "Lee Holder"}]), r"the sealing PIN's holders are not the tally trustees"),
    "sealing-on-the-signing-token": (lambda e: e[0]["data"]["config"]["sealing"].update(
        token_label=e[0]["data"]["config"]["hsm"]["token_label"]),
        r"the sealing key is configured on the signing keys' token"),
    "sealing-step-missing": (lambda e: e.remove(step(e, "sealing-pin-set")),
                             r"step is 'sealing-activation-test', expected 'sealing-pin-set'"),
    "planned-other-algorithm": (lambda e: e[0]["data"]["config"]["keys"][1].update(algorithm="ecdsa-p256"),
                                r"key 'rehearsal-tally' is not the key planned in the configuration"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_resigned_forgery_fails(ceremony, signers, name):
    _, _, files = ceremony
    change, message = FORGERIES[name]
    fails(forge(files, signers, change, fix_attestations=name != "witness-attests-other-head"), message)


# --- keys.json --------------------------------------------------------------------------------

def other_key_entry(entry: KeyEntry) -> KeyEntry:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyEntry.for_signing_key(entry.purpose, entry.label, entry.id, der, entry.note_key_name)


def test_a_substituted_public_key_is_named(ceremony):
    _, result, files = ceremony
    bundle = KeyBundle.from_json(files["keys.json"])
    swapped = KeyBundle(bundle.ceremony_id, bundle.created, (other_key_entry(bundle.keys[0]), *bundle.keys[1:]))
    fails({**files, "keys.json": swapped.to_json().encode()},
          r"keys.json keys\[0\].public_key_pem differs from the key recorded at generation \(transcript.jsonl line 11\)")


def test_a_substituted_key_with_a_rewritten_transcript_fails_the_signature_check(ceremony, signers):
    _, _, files = ceremony
    bundle = KeyBundle.from_json(files["keys.json"])
    fake = other_key_entry(bundle.keys[0])
    keys_json = KeyBundle(bundle.ceremony_id, bundle.created, (fake, *bundle.keys[1:])).to_json().encode()

    def change(entries):
        step(entries, "key-generated")["data"]["key"] = fake.to_dict()
        step(entries, "public-keys-exported")["data"]["sha256"] = hashlib.sha256(keys_json).hexdigest()
    # the self-test was signed by the real key, so it no longer verifies with the substitute
    fails(forge(files, signers, change, keys_json=keys_json),
          r"the self-test signature of 'rehearsal-checkpoint' does not verify with its public key")


def test_a_removed_key_and_a_reformatted_keys_json_are_named(ceremony):
    _, _, files = ceremony
    bundle = KeyBundle.from_json(files["keys.json"])
    fewer = KeyBundle(bundle.ceremony_id, bundle.created, bundle.keys[:2]).to_json().encode()
    fails({**files, "keys.json": fewer}, r"keys.json lists 2 keys, the transcript generated 4")
    compact = json.dumps(json.loads(files["keys.json"])).encode()
    fails({**files, "keys.json": compact}, r"keys.json is not byte for byte the file exported in the ceremony")


# --- transcript.sig.json ----------------------------------------------------------------------

def sig_doc(files):
    return json.loads(files["transcript.sig.json"])


def with_sig(files, doc):
    return {**files, "transcript.sig.json": (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()}


def test_a_removed_signature_is_named(ceremony):
    _, _, files = ceremony
    doc = sig_doc(files)
    text, block = doc["note"].split("\n\n", 1)
    doc["note"] = text + "\n\n" + block.splitlines(keepends=True)[1]
    fails(with_sig(files, doc), r"transcript.sig.json: the note has 1 signatures, expected one per signing key \(2\)")


def test_a_signature_by_the_wrong_key_is_named(ceremony):
    _, _, files = ceremony
    doc = sig_doc(files)
    text, block = doc["note"].split("\n\n", 1)
    first, second = block.splitlines(keepends=True)
    doc["note"] = text + "\n\n" + first + second.replace("rehearsal/tally", "rehearsal/checkpoint")
    fails(with_sig(files, doc), r"transcript.sig.json: signature by the tally key .* fails: note has no signature by a trusted key")


def test_a_signature_over_another_statement_is_named(ceremony, signers):
    _, result, files = ceremony
    doc = sig_doc(files)
    other = sign_head("rehearsal", 3, "ab" * 32, [(k, signers[k.label]) for k in result.bundle.keys if k.is_signing_key])
    doc["note"] = json.loads(other)["note"]
    fails(with_sig(files, doc), r"transcript.sig.json: the signed note's text is not the statement over this transcript's head")


def test_changed_counts_signers_and_form_of_the_signature_file_are_named(ceremony):
    _, _, files = ceremony
    doc = sig_doc(files)
    fails(with_sig(files, {**doc, "entries": doc["entries"] - 1}), r"transcript.sig.json: signs 30 transcript entries")
    fails(with_sig(files, {**doc, "signers": doc["signers"][:1]}), r"transcript.sig.json: signers do not match")
    fails(with_sig(files, {**doc, "extra": 1}), r"transcript.sig.json must be a JSON object with exactly the fields")
    fails({**files, "transcript.sig.json": json.dumps(doc).encode()},
          r"transcript.sig.json is not in the form hsm-signer writes")
    assert head_statement("x", 1, "ab").startswith("hsm-signer ceremony transcript v1\nx\n1\nab\n")


# --- the directory ------------------------------------------------------------------------------

def test_missing_and_extra_files_are_named(ceremony, tmp_path):
    _, result, files = ceremony
    for name in FILES:
        fails({k: v for k, v in files.items() if k != name}, rf"bundle is missing {name}")
    fails({**files, "README.txt": b"hi"}, r"unexpected file README.txt in the bundle")
    fails({**files, "SUMMARY.md": files["SUMMARY.md"] + b"\nAll good, trust us.\n"},
          r"SUMMARY.md does not say what the transcript says")
    with pytest.raises(FormatError, match=r"is not a directory"):
        verify_bundle_dir(tmp_path / "nope")
    (tmp_path / "sub").mkdir()
    with pytest.raises(FormatError, match=r"unexpected entry 'sub'"):
        verify_bundle_dir(tmp_path)


def test_a_malformed_but_chained_transcript_fails_cleanly(ceremony):
    _, _, files = ceremony
    entries = entries_of(files)
    entries[0]["data"]["config"]["officials"] = "everyone"
    fails({**files, "transcript.jsonl": chain(entries)}, r"does not have the structure of an hsm-signer transcript")


def test_the_evidence_rules():
    good = dict(evidence.EXPECTED_ATTRIBUTES)
    assert evidence.attribute_problems(good) == []
    assert evidence.attribute_problems({**good, "sensitive": None}) == ["CKA_SENSITIVE is missing, must be true"]
    assert evidence.attribute_problems("x") == ["no attribute record"]
    assert evidence.extraction_problems({"read_value": "refused: AttributeSensitive",
                                         "wrap": "not attempted: no AES"}) == []
    assert evidence.extraction_problems({"read_value": "LEAKED", "wrap": "refused: x"}) == [
        "reading CKA_VALUE was not refused ('LEAKED')"]


# --- a non-interactive rehearsal bundle ----------------------------------------------------------

def test_a_non_interactive_bundle_cannot_claim_acknowledged_witnesses(softhsm_conf, tmp_path_factory):
    config = rehearsal_config(softhsm_conf, tmp_path_factory.mktemp("ni"))
    result = run_ceremony(config, quiet())
    files = read_bundle_dir(result.bundle_dir)
    report = verify_bundle_files(files)
    assert "witnesses: none asked (non-interactive rehearsal)" in report.checks
    hsm = Hsm(config.hsm.module, token_label=config.hsm.token_label, pin_source=FixedPin(result.pin)).open()
    try:
        signers = {k.label: hsm.signer(k.label) for k in result.bundle.keys if k.is_signing_key}
        fails(forge(files, signers, lambda e: step(e, "witness-attestation")["data"].update(acknowledged=True)),
              r"a non-interactive ceremony cannot have acknowledged witnesses")
    finally:
        hsm.close()


# --- retirement ------------------------------------------------------------------------------------

def retire_data(bundle_dir, token_label, share_files, **retirement):
    return {
        "retirement": {"bundle": str(bundle_dir), "reason": "rehearsal over", "rehearsal": True, **retirement},
        "hsm": {"module": "softhsm", "token_label": token_label,
                "pin": {"source": "shares", "share_files": [str(p) for p in share_files]}},
        "officials": [{"name": "Ada Administrator", "roles": ["administrator"]},
                      {"name": "Wyn Witness", "roles": ["witness"]}],
    }


@pytest.fixture(scope="module")
def retired(softhsm_conf, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("retire")
    config = rehearsal_config(softhsm_conf, workdir)
    result = run_ceremony(config, quiet())
    retire = parse_retire_config(retire_data(result.bundle_dir, config.hsm.token_label, result.share_files[:2]))
    retirement = run_retirement(retire, quiet())
    return config, result, retirement, read_bundle_dir(retirement.bundle_dir)


def test_a_retirement_destroys_the_keys_and_its_bundle_verifies(retired):
    config, result, retirement, files = retired
    assert retirement.bundle_dir == result.bundle_dir.parent / "rehearsal-retire-1"
    assert sorted(files) == ["SUMMARY.md", "retired.json", "transcript.jsonl", "transcript.sig.json"]
    report = verify_bundle_dir(retirement.bundle_dir)
    text = report.text()
    assert "original ceremony bundle rehearsal verifies and publishes every retired key" in text
    assert "checkpoint key rehearsal-checkpoint: destroyed (2 objects), no longer on the token" in text
    assert "the first 8 entries (up to destruction) are signed" in text
    assert "transcript head signed by the tally key rehearsal-tally" in text
    assert objects(config, result.pin) == []


def test_a_retirement_bundle_alone_notes_that_it_was_not_cross_checked(retired):
    _, _, retirement, files = retired
    report = verify_retirement_files(files, "copy")
    assert any("not cross-checked" in n for n in report.notes)


@pytest.mark.parametrize("name", ["retired.json", "transcript.jsonl", "transcript.sig.json", "SUMMARY.md"])
def test_any_changed_byte_of_a_retirement_bundle_fails(retired, name):
    _, _, _, files = retired
    for _position, _bit, mutated in flips(files[name], 150):
        with pytest.raises(VerificationError):
            verify_retirement_files({**files, name: mutated}, "x")


def test_the_unsigned_destruction_records_are_still_checked(retired):
    _, _, _, files = retired
    entries = entries_of(files)
    step(entries, "key-destroyed")["data"]["still_present"] = True
    raw = chain(entries)
    parsed = parse_transcript(raw)
    forged = {**files, "transcript.jsonl": raw,
              "SUMMARY.md": retirement_summary(parsed, transcript_head(raw), 8).encode()}
    with pytest.raises(VerificationError, match=r"line 9 \(key-destroyed\): does not record the destruction of 'rehearsal-checkpoint'"):
        verify_retirement_files(forged, "x")
    lines = files["transcript.jsonl"].splitlines(keepends=True)
    with pytest.raises(VerificationError, match=r"ends early"):
        verify_retirement_files({**files, "transcript.jsonl": b"".join(lines[:-1])}, "x")


def test_a_retirement_checked_against_the_wrong_original_fails(retired, ceremony):
    _, _, retirement, files = retired
    _, other, other_files = ceremony
    with pytest.raises(VerificationError, match=r"the original bundle's keys.json is not the one recorded"):
        verify_bundle_dir(retirement.bundle_dir, original=other.bundle_dir)
    with pytest.raises(FormatError, match=r"--original is only for retirement bundles"):
        verify_bundle_dir(other.bundle_dir, original=other.bundle_dir)


def test_retiring_keys_that_are_not_the_published_ones_refuses_and_destroys_nothing(retired, ceremony, tmp_path):
    _, retired_result, _, _ = retired
    live_config, live, _ = ceremony
    before = objects(live_config, live.pin)
    # the bundle of the retired ceremony, but the token of the live one: same labels, other keys
    retire = parse_retire_config(retire_data(retired_result.bundle_dir, live_config.hsm.token_label,
                                             live.share_files or [], id="wrong-token"), cwd=tmp_path)
    retire = type(retire)(**{**retire.__dict__, "pin": type(retire.pin)(source="env", variable="LIVE_PIN")})
    import os
    os.environ["LIVE_PIN"] = live.pin
    try:
        with pytest.raises(HsmConfigError, match=r"the key labelled 'rehearsal-checkpoint' on token .* is not the published "
                                                 r"checkpoint key \(public key fingerprints differ\); nothing was destroyed"):
            run_retirement(retire, quiet(), tmp_path / "out")
    finally:
        del os.environ["LIVE_PIN"]
    assert objects(live_config, live.pin) == before
    assert not (tmp_path / "out").exists()


def test_retirement_refuses_unknown_labels_and_hmac_only(retired, tmp_path):
    _, result, _, _ = retired
    for labels, message in ((["nope"], r"retirement.labels: 'nope' is not a key of ceremony rehearsal"),
                            (["rehearsal-code-hmac"], r"retire at least one signing key")):
        retire = parse_retire_config(retire_data(result.bundle_dir, "t", [], labels=labels))
        with pytest.raises(ConfigError, match=message):
            run_retirement(retire, quiet(), tmp_path / "out")


def test_verification_runs_without_pkcs11():
    """Auditors verify bundles on machines with no HSM library: the verifier never imports PKCS#11."""
    import subprocess
    import sys
    code = ("import sys, hsm_signer.ceremony.verify; "
            "sys.exit('pkcs11' in sys.modules or 'PyKCS11' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
