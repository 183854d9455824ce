"""``SUMMARY.md``: the short human-readable account of a ceremony or retirement, for publication.

It is generated from the transcript alone (a pure function of its entries and head), so
the verifier regenerates it and refuses a bundle whose summary was edited: what people
read is exactly what the signed transcript says. Never any I/O here, and never a secret
(the transcript holds none).
"""

from __future__ import annotations

from typing import Any, Sequence

from .transcript import Entry

SUMMARY_FILE = "SUMMARY.md"


def _first(entries: Sequence[Entry], step: str) -> dict[str, Any]:
    return next((e.data for e in entries if e.step == step), {})


def _all(entries: Sequence[Entry], step: str) -> list[dict[str, Any]]:
    return [e.data for e in entries if e.step == step]


def _token_line(info: dict[str, Any]) -> str:
    if not info:
        return "unknown"
    return (f"{info.get('manufacturer', '?')} {info.get('model', '?')}, token {info.get('label', '?')!r}, "
            f"serial {info.get('serial', '?')}, firmware {info.get('firmware_version', '?')}")


def _witness_lines(entries: Sequence[Entry]) -> list[str]:
    attestations = _all(entries, "witness-attestation")
    if any(a.get("acknowledged") for a in attestations):
        return [f"- Witness {a.get('witness', '?')} attested transcript head `{a.get('attested_head', '?')}`"
                for a in attestations if a.get("acknowledged")]
    names = ", ".join(n for a in attestations for n in a.get("witnesses", []))
    return [f"- Witnesses {names}: not asked (non-interactive rehearsal)"]


def _sealing_lines(entries: Sequence[Entry]) -> list[str]:
    split = _first(entries, "sealing-pin-split")
    if not split:
        return []
    activation = _first(entries, "sealing-activation-test")
    return [
        f"- Sealing key: on its own HSM token ({_token_line(activation.get('token', {}))}); its PIN split "
        f"{split.get('threshold', '?')}-of-{split.get('shares', '?')} (SLIP-39) between the tally trustees "
        + ", ".join(f"{h['holder']} (share {h['index']})" for h in split.get("holders", [])),
        f"- Sealing token activation test: {', '.join(activation.get('holders', []))} rebuilt its PIN and logged in",
    ]


def _authorisation_line(authorised: dict[str, Any]) -> str:
    if authorised.get("witnesses"):
        return f"- Destruction authorised on site by witness(es) {', '.join(authorised['witnesses'])}"
    return "- Witnesses were not asked (non-interactive rehearsal)"


def ceremony_summary(entries: Sequence[Entry], head: str) -> str:
    opened = _first(entries, "ceremony-opened")
    config = opened.get("config", {})
    split = _first(entries, "pin-split")
    activation = _first(entries, "activation-test")
    officials = config.get("officials", [])
    admin = next((o["name"] for o in officials if "administrator" in o.get("roles", [])), "?")
    out = [f"# Key ceremony `{opened.get('ceremony_id', '?')}`", ""]
    if config.get("description"):
        out += [config["description"], ""]
    if config.get("rehearsal"):
        out += ["**REHEARSAL** — these keys must never be used for a real election.", ""]
    out += [
        f"- Held {entries[0].time} to {entries[-1].time} (UTC), "
        f"{'interactive' if opened.get('interactive') else 'non-interactive'}, with {opened.get('tool', '?')}",
        f"- Administrator: {admin}",
        f"- HSM: {_token_line(activation.get('token', {}))}",
        f"- User PIN: split {split.get('threshold', '?')}-of-{split.get('shares', '?')} (SLIP-39) between "
        + ", ".join(f"{h['holder']} (share {h['index']})" for h in split.get("holders", [])),
        f"- Activation test: {', '.join(activation.get('holders', []))} rebuilt the PIN and logged in",
        *_sealing_lines(entries),
        *_witness_lines(entries),
        f"- Transcript: {len(entries)} entries, head `{head}`, signed by every signing key below",
        "",
        "## Keys",
        "",
        "| purpose | algorithm | HSM label | id | SHA-256 fingerprint of the public key |",
        "|---|---|---|---|---|",
    ]
    generated = _all(entries, "key-generated")
    for record in generated:
        key = record.get("key", {})
        out.append(f"| {key.get('purpose')} | {key.get('algorithm')} | {key.get('label')} | {key.get('id')} | "
                   f"{key.get('fingerprint', '(secret key: no public half)')} |")
    out += ["", "Every key was generated inside the HSM as a sensitive, never-extractable token object; "
            "reading it and wrapping it out were refused; each signing key signed a self-test nonce"
            + (", and the sealing key (derive only) derived the recorded self-test secret" if _first(entries, "sealing-pin-split") else "")
            + ".", ""]
    signing = [r["key"] for r in generated if r.get("key", {}).get("note_verifier_key")]
    if signing:
        out += ["## Signed-note verifier keys", ""]
        out += [f"- {k['purpose']}: `{k['note_verifier_key']}`" for k in signing]
        out.append("")
    out += ["## Check it yourself", "", "```", "hsm-signer ceremony verify <this directory>", "```", ""]
    return "\n".join(out)


def retirement_summary(entries: Sequence[Entry], head: str, signed_entries: int) -> str:
    opened = _first(entries, "retirement-opened")
    out = [f"# Key retirement `{opened.get('retirement_id', '?')}`", "",
           f"Retires keys of ceremony `{opened.get('ceremony_id', '?')}`. Reason: {opened.get('reason', '?')}", ""]
    if opened.get("rehearsal"):
        out += ["**REHEARSAL**", ""]
    out += [
        f"- Held {entries[0].time} to {entries[-1].time} (UTC) by {entries[0].actor}",
        f"- HSM: {_token_line(_first(entries, 'activation').get('token', {}))}",
        _authorisation_line(_first(entries, "destruction-authorised")),
        f"- Transcript: {len(entries)} entries; the first {signed_entries} (up to the moment of destruction) "
        "are signed by each retired signing key, as proof that the retirer held it",
        "",
        "## Keys destroyed",
        "",
        "| purpose | HSM label | id | objects destroyed | destroyed at (UTC) | SHA-256 fingerprint |",
        "|---|---|---|---|---|---|",
    ]
    destroyed = {e.data.get("label"): e for e in entries if e.step == "key-destroyed"}
    for found in _all(entries, "key-found"):
        key = found.get("key", {})
        gone = destroyed.get(key.get("label"))
        out.append(f"| {key.get('purpose')} | {key.get('label')} | {key.get('id')} | "
                   f"{gone.data.get('objects_destroyed', '?') if gone else 'NOT DESTROYED'} | "
                   f"{gone.time if gone else '-'} | {key.get('fingerprint', '(secret key)')} |")
    out += ["", "## Check it yourself", "", "```", "hsm-signer ceremony verify <this directory>", "```", ""]
    return "\n".join(out)
