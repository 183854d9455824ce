"""Checking a published ceremony bundle with no trust in whoever made it.

:func:`verify_bundle_files` does the checking on the file contents, with no I/O
(:func:`hsm_signer.ceremony.verify.verify_bundle_dir` reads a directory). It checks, in order:

1. the bundle holds exactly ``keys.json``, ``transcript.jsonl``, ``transcript.sig.json``
   and ``SUMMARY.md``;
2. the transcript: canonical lines, consecutive ``seq``, unbroken hash chain;
3. the script: exactly the steps of a complete ceremony, in order, for the officials,
   share holders and keys its opening entry names;
4. each key: ``keys.json`` matches the key recorded at generation, field by field, and
   the hash of ``keys.json`` matches the one the transcript recorded at export;
   attributes read back were sensitive, never extractable, local, always sensitive,
   token objects; reading and wrapping it out were refused; its self-test signature
   verifies with the published public key; the sealing key (when the ceremony made one)
   can only derive, and its recorded derive self-test recomputes with the published key;
5. the PIN was split as configured, every holder got a share, m shares activated; the
   sealing token's PIN likewise among the tally trustees, none of them a share holder;
6. witnesses attested the head the transcript had at that moment;
7. ``transcript.sig.json``: every signing key of ``keys.json`` signed the transcript head;
8. ``SUMMARY.md`` is exactly what the transcript says.

Any failure raises :class:`VerificationError` naming the file, line or key and what is
wrong. On success it returns a :class:`~.checks.Report` of what was checked.
This module must never import PKCS#11: auditors run it without an HSM.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hsm_signer.bundle import ECDH_P256, KEYS_FILE, SEALING
from hsm_signer.errors import VerificationError

from .checks import Report, check_key_evidence, check_steps, failure, guarded, load_key_bundle, require_files, value_of
from .signatures import SIGNATURES_FILE, check_signatures
from .summary import SUMMARY_FILE, ceremony_summary
from .transcript import TRANSCRIPT_FILE, Entry, parse_transcript, transcript_head

CEREMONY_FILES = (KEYS_FILE, TRANSCRIPT_FILE, SIGNATURES_FILE, SUMMARY_FILE)


def verify_bundle_files(files: dict[str, bytes], where: str = "bundle") -> Report:
    """Verify a ceremony bundle given as ``{file name: bytes}``; see the module docstring."""
    require_files(files, CEREMONY_FILES)
    return guarded(_verify_ceremony, files, where)


def _verify_ceremony(files: dict[str, bytes], where: str) -> Report:
    raw = files[TRANSCRIPT_FILE]
    entries = parse_transcript(raw)
    head = transcript_head(raw)
    checks = [f"transcript: {len(entries)} entries, hash chain intact, head {head}"]

    opened = entries[0]
    if opened.step != "ceremony-opened":
        raise failure(opened, "a ceremony transcript starts with ceremony-opened")
    ceremony_id = value_of(opened, "ceremony_id")
    config = value_of(opened, "config")
    interactive = value_of(opened, "interactive")
    if not isinstance(config, dict) or config.get("ceremony_id") != ceremony_id:
        raise failure(opened, "the recorded configuration is of another ceremony")
    officials = value_of(opened, "config", "officials")
    holders = [o["name"] for o in officials if "share-holder" in o.get("roles", [])]
    witnesses = [o["name"] for o in officials if "witness" in o.get("roles", [])]
    planned = list(value_of(opened, "config", "keys"))
    sealing = config.get("sealing")
    trustees = [o["name"] for o in officials if "tally-trustee" in o.get("roles", [])]
    sealing_steps: list[str] = []
    if sealing is not None:
        planned.append({"purpose": SEALING, "label": sealing.get("label"), "algorithm": ECDH_P256})
        sealing_steps = (["sealing-pin-split"] + ["sealing-share-handed-over"] * len(trustees)
                         + ["sealing-pin-set", "sealing-activation-test", "key-generated", "extraction-attempts",
                            "self-test"])
        if sealing.get("token_label") == value_of(opened, "config", "hsm", "token_label"):
            raise failure(opened, "the sealing key is configured on the signing keys' token; "
                                  "it must have a token of its own")
    elif trustees:
        raise failure(opened, "the configuration names tally trustees but no sealing key")
    expected = (["ceremony-opened", "roll-call", "environment", "preflight", "pin-split"]
                + ["share-handed-over"] * len(holders) + ["user-pin-set", "activation-test"]
                + ["key-generated", "extraction-attempts", "self-test"] * (len(planned) - (sealing is not None))
                + sealing_steps
                + ["public-keys-exported"] + ["witness-attestation"] * (len(witnesses) if interactive else 1)
                + ["ceremony-closed"])
    check_steps(entries, expected)
    checks.append(f"script: all {len(expected)} steps of a complete ceremony, in order")

    bundle = load_key_bundle(files[KEYS_FILE])
    if bundle.ceremony_id != ceremony_id:
        raise VerificationError(f"{KEYS_FILE}: ceremony_id is {bundle.ceremony_id!r}, the transcript is of {ceremony_id!r}")
    by_step: dict[str, list[Entry]] = {}
    for entry in entries:
        by_step.setdefault(entry.step, []).append(entry)
    generated = by_step["key-generated"]
    if len(bundle.keys) != len(generated):
        raise VerificationError(f"{KEYS_FILE} lists {len(bundle.keys)} keys, the transcript generated {len(generated)}")
    for i, (key, gen, attempts, test, plan) in enumerate(zip(bundle.keys, generated, by_step["extraction-attempts"],
                                                               by_step["self-test"], planned)):
        recorded = value_of(gen, "key")
        for name, value in key.to_dict().items():
            if not isinstance(recorded, dict) or recorded.get(name) != value:
                raise VerificationError(
                    f"{KEYS_FILE} keys[{i}].{name} differs from the key recorded at generation "
                    f"({TRANSCRIPT_FILE} line {gen.seq + 1})")
        if recorded != key.to_dict():
            raise failure(gen, f"records fields that keys.json keys[{i}] does not have")
        if (plan.get("purpose"), plan.get("label"), plan.get("algorithm")) != (key.purpose, key.label, key.algorithm):
            raise failure(gen, f"key {key.label!r} is not the key planned in the configuration ({plan})")
        if key.is_signing_key and key.note_key_name != f"{ceremony_id}/{key.purpose}":
            raise VerificationError(f"{KEYS_FILE} keys[{i}].note_key_name must be {ceremony_id}/{key.purpose}")
        checks += check_key_evidence(ceremony_id, gen, attempts, test, key)
    exported = by_step["public-keys-exported"][0]
    if value_of(exported, "sha256") != hashlib.sha256(files[KEYS_FILE]).hexdigest():
        raise VerificationError(
            f"{KEYS_FILE} is not byte for byte the file exported in the ceremony "
            f"(its SHA-256 differs from {TRANSCRIPT_FILE} line {exported.seq + 1}); it was edited")
    if value_of(exported, "created") != bundle.created:
        raise VerificationError(f"{KEYS_FILE}: created differs from the export record")
    checks.append(f"{KEYS_FILE}: exactly the file exported in the ceremony ({len(bundle.keys)} keys)")

    checks.append(_check_pin(by_step, holders, value_of(opened, "config", "threshold")))
    if sealing is not None:
        checks.append(_check_sealing_pin(by_step, trustees, holders, sealing))
    checks.append(_check_witnesses(by_step["witness-attestation"], witnesses, interactive))

    signers = [k for k in bundle.keys if k.is_signing_key]
    checks += check_signatures(files[SIGNATURES_FILE], ceremony_id, len(entries), head, signers)

    if files[SUMMARY_FILE] != ceremony_summary(entries, head).encode("utf-8"):
        raise VerificationError(f"{SUMMARY_FILE} does not say what the transcript says; it was edited "
                                "(it must be exactly the summary generated from the transcript)")
    checks.append(f"{SUMMARY_FILE}: matches the transcript")
    notes = []
    if value_of(opened, "config", "rehearsal"):
        notes.append("this is a REHEARSAL ceremony: its keys must never be used for a real election")
    if not interactive:
        notes.append("non-interactive: officials and witnesses did not acknowledge on screen")
    return Report("ceremony", ceremony_id, where, tuple(checks), tuple(notes), head)


def _check_split(by_step: dict[str, list[Entry]], step: str, people: list[str], threshold: Any, *,
                 pin: str, holders_differ: str, share: str, test: str, whose: str) -> list[str]:
    """One m-of-n PIN split as the transcript records it (steps ``{step}pin-split``,
    ``{step}share-handed-over``, ``{step}activation-test``): the configured threshold and
    people, each share handed to its holder in order, and an activation test by at least m
    distinct holders. The service's PIN and the sealing token's share it; the words differ."""
    split = by_step[f"{step}pin-split"][0]
    if value_of(split, "threshold") != threshold or value_of(split, "shares") != len(people):
        raise failure(split, f"the {pin} split is not {threshold}-of-{len(people)} as configured")
    if [h.get("holder") for h in value_of(split, "holders")] != people:
        raise failure(split, holders_differ)
    for index, (entry, person) in enumerate(zip(by_step[f"{step}share-handed-over"], people), 1):
        if (value_of(entry, "holder"), value_of(entry, "index")) != (person, index) or entry.actor != person:
            raise failure(entry, f"expected {share} {index} handed to {person}")
    activation = by_step[f"{step}activation-test"][0]
    used = value_of(activation, "holders")
    if not isinstance(used, list) or len(set(used)) != len(used) or not set(used) <= set(people) \
            or len(used) < threshold or value_of(activation, "shares_used") != len(used):
        raise failure(activation, f"the {test} must use at least {threshold} distinct {whose} shares")
    return used


def _check_pin(by_step: dict[str, list[Entry]], holders: list[str], threshold: Any) -> str:
    used = _check_split(by_step, "", holders, threshold, pin="PIN",
                        holders_differ="the share holders are not those of the configuration",
                        share="share", test="activation test", whose="share holders'")
    return (f"user PIN split {threshold}-of-{len(holders)} (SLIP-39); {len(used)} shares "
            f"({', '.join(used)}) activated the token")


def _check_sealing_pin(by_step: dict[str, list[Entry]], trustees: list[str], holders: list[str],
                       sealing: dict[str, Any]) -> str:
    threshold = sealing.get("threshold")
    both = sorted(set(trustees) & set(holders))
    split = by_step["sealing-pin-split"][0]
    if both:
        raise failure(split, f"{', '.join(both)} would be both share holder and tally trustee; they must be distinct")
    if value_of(split, "token_label") != sealing.get("token_label"):
        raise failure(split, "the sealing PIN was split for another token than the configured sealing token")
    used = _check_split(by_step, "sealing-", trustees, threshold, pin="sealing PIN",
                        holders_differ="the sealing PIN's holders are not the tally trustees of the configuration",
                        share="sealing share", test="sealing activation test", whose="trustees'")
    return (f"sealing token {sealing.get('token_label')}: PIN split {threshold}-of-{len(trustees)} among the tally "
            f"trustees (none a share holder); {len(used)} shares ({', '.join(used)}) activated it")


def _check_witnesses(attestations: list[Entry], witnesses: list[str], interactive: Any) -> str:
    if not interactive:
        if value_of(attestations[0], "acknowledged") is not False:
            raise failure(attestations[0], "a non-interactive ceremony cannot have acknowledged witnesses")
        return "witnesses: none asked (non-interactive rehearsal)"
    for entry, witness in zip(attestations, witnesses):
        if entry.actor != witness or value_of(entry, "witness") != witness or value_of(entry, "acknowledged") is not True:
            raise failure(entry, f"expected the attestation of witness {witness}")
        if value_of(entry, "attested_head") != entry.prev:
            raise failure(entry, f"{witness} attested head {value_of(entry, 'attested_head')}, "
                               f"but the transcript's head at that moment was {entry.prev}")
    return f"witnesses {', '.join(witnesses)} attested the transcript head"
