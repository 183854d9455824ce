"""The key ceremony against real SoftHSM2 tokens: a rehearsal runs, an independent PKCS#11 client
agrees on the keys, nothing can get a key out, re-runs refuse and change nothing, m shares activate,
and the interactive script shows each share to its holder alone.

Shared helpers (``rehearsal_config``, ``ScriptedIO``, snapshots) are imported by the other
ceremony test modules.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_signer.ceremony.config import load_rehearsal
from hsm_signer.ceremony.io import CeremonyAbortedError, NonInteractiveIO
from hsm_signer.ceremony.runner import run_ceremony
from hsm_signer.ceremony.transcript import Transcript, parse_transcript
from hsm_signer.ceremony.verify import verify_bundle_dir
from harness import TEST_MODULE, TEST_TOKEN, pykcs11
from hsm_signer.errors import ConfigError, HsmConfigError
from hsm_signer.hsm import FixedPin, Hsm
from hsm_signer.hsm.manage import generate_signing_key
from hsm_signer.hsm.shares import SharePin, ShareError, read_share_file
from hsm_signer.log.note import NoteVerifier, sign_note, open_note
from hsm_signer.softhsm import SoftHsmToken
from hsm_signer.signer import verify_signature

pytestmark = pytest.mark.hsm

_labels = itertools.count(1)
LABELS = ("rehearsal-checkpoint", "rehearsal-tally", "rehearsal-code-hmac")


def rehearsal_config(softhsm_conf: Path, workdir: Path, **overrides):
    """The committed rehearsal config on a new token label, writing under ``workdir``."""
    if TEST_TOKEN or TEST_MODULE == "opencryptoki":
        pytest.skip("a SoftHSM rehearsal makes its own SoftHSM token; the module under test has only a prepared token")
    if TEST_MODULE:
        overrides = {"hsm.module": TEST_MODULE, **overrides}  # SoftHSM tokens, reached through it
    label = f"cer-{os.getpid()}-{next(_labels)}"
    return load_rehearsal({"hsm.token_label": label, "hsm.softhsm_conf": str(softhsm_conf), **overrides}, cwd=workdir)


def quiet() -> NonInteractiveIO:
    import io
    return NonInteractiveIO(io.StringIO())


def token_of(config, pin: str) -> SoftHsmToken:
    """The ceremony's token as the PyKCS11 harness wants it."""
    return SoftHsmToken(module=config.hsm.module, conf=Path(os.environ["SOFTHSM2_CONF"]),
                        label=config.hsm.token_label, so_pin="not-kept", user_pin=pin)


def entries_of(result):
    return parse_transcript((result.bundle_dir / "transcript.jsonl").read_bytes())


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


class ScriptedIO:
    """An interactive audience driven by the test: confirms, acknowledges, receives and types shares."""

    interactive = True

    def __init__(self, activation=None, abort_at: str | None = None):
        self.said: list[str] = []
        self.acks: list[str] = []
        self.confirms = 0
        self.shown: dict[str, str] = {}
        self.show_order: list[str] = []
        self.prompts: list[str] = []
        self.activation = activation  # fn(io, prompt) -> str, default: each holder types their own share
        self.abort_at = abort_at

    def say(self, text: str) -> None:
        self.said.append(text)

    def confirm(self, prompt: str) -> None:
        self.confirms += 1
        if self.abort_at and self.abort_at in self.said[-1]:
            raise CeremonyAbortedError("aborted at the administrator's request")

    def acknowledge(self, name: str, prompt: str) -> None:
        self.acks.append(name)

    def show_share(self, holder: str, heading: str, share: str) -> None:
        assert holder in heading
        self.shown[holder] = share
        self.show_order.append(holder)

    def read_share(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if self.activation is not None:
            return self.activation(self, prompt)
        holder = prompt.split(":")[0]
        return self.shown[holder]


# --- a complete non-interactive rehearsal ---------------------------------------------------

@pytest.fixture(scope="module")
def rehearsal(softhsm_conf, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ceremony")
    config = rehearsal_config(softhsm_conf, workdir)
    result = run_ceremony(config, quiet())
    return config, result, workdir


def test_a_non_interactive_rehearsal_completes_and_its_bundle_verifies(rehearsal):
    config, result, workdir = rehearsal
    assert result.bundle_dir == workdir.resolve() / "keys" / "rehearsal"
    report = verify_bundle_dir(result.bundle_dir)
    assert report.kind == "ceremony" and report.ceremony_id == "rehearsal"
    assert any("transcript head signed by the checkpoint key" in c for c in report.checks)
    assert "REHEARSAL" in report.text()
    assert re.fullmatch(r"[0-9a-f]{32}", result.pin)
    assert [k.label for k in result.bundle.keys] == [*LABELS, "rehearsal-sealing"]


def test_the_bundle_holds_four_files_and_no_pin_or_share(rehearsal):
    config, result, workdir = rehearsal
    assert sorted(p.name for p in result.bundle_dir.iterdir()) == [
        "SUMMARY.md", "keys.json", "transcript.jsonl", "transcript.sig.json"]
    shares = [read_share_file(p)[0] for p in result.share_files]
    for item in result.bundle_dir.iterdir():
        text = item.read_text()
        assert result.pin not in text
        for share in shares:
            assert " ".join(share.split()[:4]) not in text


def test_rehearsal_shares_are_separate_private_files_marked_as_rehearsal_material(rehearsal):
    config, result, workdir = rehearsal
    assert result.shares_dir == workdir.resolve() / "rehearsal-shares" / "rehearsal"
    assert not result.shares_dir.is_relative_to(result.bundle_dir)
    assert oct(result.shares_dir.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in result.share_files] == ["share-sam-holder.txt", "share-kim-holder.txt", "share-lee-holder.txt"]
    for path in result.share_files:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert path.read_text().startswith("# REHEARSAL MATERIAL")
    assert len({read_share_file(p)[0] for p in result.share_files}) == 3


def test_the_transcript_records_each_holder_and_never_a_share(rehearsal):
    config, result, workdir = rehearsal
    entries = parse_transcript((result.bundle_dir / "transcript.jsonl").read_bytes())
    handed = [e.data for e in entries if e.step == "share-handed-over"]
    assert [(h["holder"], h["index"]) for h in handed] == [("Sam Holder", 1), ("Kim Holder", 2), ("Lee Holder", 3)]
    assert all("REHEARSAL MATERIAL" in h["delivery"] for h in handed)
    activation = next(e.data for e in entries if e.step == "activation-test")
    assert activation["holders"] == ["Kim Holder", "Lee Holder"]


def test_an_independent_client_sees_sensitive_never_extractable_local_token_keys(rehearsal):
    config, result, _ = rehearsal
    seen = {(o["class"], o["label"]): o for o in pykcs11(token_of(config, result.pin), "objects")}
    expected = {"token": True, "private": True, "sensitive": True, "extractable": False, "local": True,
                "always_sensitive": True, "never_extractable": True}
    for cls, label in (("private_key", LABELS[0]), ("private_key", LABELS[1]), ("secret_key", LABELS[2])):
        key = seen[(cls, label)]
        assert {k: key[k] for k in expected} == expected, label
        assert key["id"] == result.bundle.keys[LABELS.index(label)].id
    assert seen[("public_key", LABELS[0])]["token"] is True


@pytest.mark.parametrize("label", LABELS)
def test_reading_or_wrapping_a_key_out_fails(rehearsal, label):
    config, result, _ = rehearsal
    token = token_of(config, result.pin)
    assert pykcs11(token, "read-value", label) == {"error": "CKR_ATTRIBUTE_SENSITIVE"}
    wrapped = pykcs11(token, "wrap", label)
    assert "wrapped_length" not in wrapped and wrapped["error"] in ("CKR_KEY_UNEXTRACTABLE", "CKR_KEY_NOT_WRAPPABLE")


def test_pkcs11_tool_lists_the_keys_as_sensitive_never_extractable_local(rehearsal):
    config, result, _ = rehearsal
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        pytest.skip("OpenSC pkcs11-tool is not installed (apt-get install opensc)")
    listing = subprocess.run(
        [tool, "--module", config.hsm.module, "--token-label", config.hsm.token_label, "--login",
         "--pin", result.pin, "--list-objects"], capture_output=True, text=True, timeout=60, check=True).stdout
    blocks = re.split(r"\n(?=\S)", listing)
    for kind, label in (("Private Key Object", LABELS[0]), ("Private Key Object", LABELS[1]),
                        ("Secret Key Object", LABELS[2])):
        block = next(b for b in blocks if b.startswith(kind) and f"label:      {label}\n" in b + "\n")
        access = re.search(r"Access:\s+(.*)", block).group(1)
        assert [a.strip() for a in access.split(",")] == ["sensitive", "always sensitive", "never extractable", "local"]


def test_keys_json_holds_the_public_keys_the_hsm_signs_with(rehearsal):
    config, result, _ = rehearsal
    hsm = Hsm(config.hsm.module, token_label=config.hsm.token_label,
              pin_source=SharePin(share_files=result.share_files[:2])).open()
    try:
        for entry in result.bundle.keys[:2]:
            assert entry.note_key_name == f"rehearsal/{entry.purpose}"
            signer = hsm.signer(entry.label)
            assert signer.public_key_der == entry.public_key_der
            note = sign_note("hello\n", entry.note_key_name, signer)
            open_note(note, [NoteVerifier.from_string(entry.note_verifier_key)])
            verify_signature(entry.public_key_der, b"x", signer.sign(b"x"))
    finally:
        hsm.close()


@pytest.mark.parametrize("pair", list(itertools.combinations(range(3), 2)))
def test_any_two_of_the_three_rehearsal_shares_activate_the_token(rehearsal, pair):
    config, result, _ = rehearsal
    source = SharePin(share_files=[result.share_files[i] for i in pair])
    assert source.get_pin() == result.pin
    Hsm(config.hsm.module, token_label=config.hsm.token_label, pin_source=source).open().close()


def test_one_rehearsal_share_cannot_activate_and_a_corrupted_one_is_named(rehearsal, tmp_path):
    config, result, _ = rehearsal
    with pytest.raises(ShareError, match=r"fewer than 2 shares: got 1 of the 2 needed"):
        Hsm(config.hsm.module, token_label=config.hsm.token_label,
            pin_source=SharePin(share_files=result.share_files[:1])).open()
    corrupted = tmp_path / "share-kim-holder.txt"
    text = result.share_files[1].read_text()
    words = read_share_file(result.share_files[1])[0].split()
    words_changed = words[:6] + ["academic" if words[6] != "academic" else "acid"] + words[7:]
    corrupted.write_text(text.replace(" ".join(words), " ".join(words_changed)))
    with pytest.raises(ShareError, match=rf"share file {re.escape(str(corrupted))} is corrupted"):
        SharePin(share_files=[result.share_files[0], corrupted]).get_pin()


# --- refusing to overwrite or reuse ------------------------------------------------------------

def objects(config, pin):
    return sorted(json.dumps(o, sort_keys=True) for o in pykcs11(token_of(config, pin), "objects"))


def test_rerunning_into_an_existing_bundle_directory_refuses_and_changes_nothing(rehearsal, softhsm_conf):
    config, result, workdir = rehearsal
    before_files, before_objects = tree(workdir), objects(config, result.pin)
    again = replace(config, hsm=replace(config.hsm, token_label=config.hsm.token_label + "-new"))
    with pytest.raises(ConfigError, match=r"output directory .*keys/rehearsal already exists; choose another "
                                          r"ceremony id or --out \(nothing is ever overwritten\)"):
        run_ceremony(again, quiet())
    assert tree(workdir) == before_files
    assert objects(config, result.pin) == before_objects
    from hsm_signer.softhsm import token_exists
    assert not token_exists(softhsm_conf, again.hsm.token_label)


def test_rerunning_on_an_existing_token_refuses_and_changes_nothing(rehearsal, tmp_path):
    config, result, workdir = rehearsal
    before_files, before_objects = tree(workdir), objects(config, result.pin)
    with pytest.raises(HsmConfigError, match=r"a SoftHSM token labelled .* already exists; initialise = true makes a new token"):
        run_ceremony(config, quiet(), tmp_path / "other", shares_dir=tmp_path / "other-shares")
    assert list(tmp_path.iterdir()) == []
    assert tree(workdir) == before_files and objects(config, result.pin) == before_objects


def existing_token_config(softhsm_conf, tokens, workdir, monkeypatch):
    """A ceremony on an initialised token with a known initial PIN (given through the environment)."""
    token = tokens.new("cer-existing")
    monkeypatch.setenv("CEREMONY_TEST_PIN", token.user_pin)
    config = load_rehearsal({
        "hsm.module": token.module, "hsm.token_label": token.label, "hsm.initialise": False,
        "hsm.initial_pin": {"source": "env", "variable": "CEREMONY_TEST_PIN"},
    }, cwd=workdir)
    return token, config


def test_an_existing_key_label_refuses_and_changes_nothing(softhsm_conf, tokens, tmp_path, monkeypatch):
    token, config = existing_token_config(softhsm_conf, tokens, tmp_path, monkeypatch)
    with Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)) as hsm:
        generate_signing_key(hsm, "rehearsal-tally", b"\x42", "ecdsa-p256")
    before_files, before_objects = tree(tmp_path), objects(config, token.user_pin)
    with pytest.raises(HsmConfigError, match=r"key label 'rehearsal-tally' already exists on HSM token .*labels are never "
                                             r"reused: choose new labels in \[\[keys\]\] \(nothing was changed\)"):
        run_ceremony(config, quiet())
    # the initial PIN still works (it was not changed) and the token holds the same objects
    assert objects(config, token.user_pin) == before_objects
    assert tree(tmp_path) == before_files


def test_on_an_initialised_token_the_split_pin_replaces_the_initial_pin(softhsm_conf, tokens, tmp_path, monkeypatch):
    token, config = existing_token_config(softhsm_conf, tokens, tmp_path, monkeypatch)
    result = run_ceremony(config, quiet())
    verify_bundle_dir(result.bundle_dir)
    entries = parse_transcript((result.bundle_dir / "transcript.jsonl").read_bytes())
    assert next(e.data for e in entries if e.step == "user-pin-set")["method"] == "C_SetPIN replaced the initial user PIN"
    preflight = next(e.data for e in entries if e.step == "preflight")
    assert preflight["mechanisms"]["rehearsal-tally"] == ["CKM_EC_EDWARDS_KEY_PAIR_GEN", "CKM_EDDSA"]
    with pytest.raises(HsmConfigError, match=r"wrong PIN"):
        Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()
    Hsm(token.module, token_label=token.label, pin_source=SharePin(share_files=result.share_files[1:])).open().close()


def test_non_interactive_is_for_rehearsals_only(softhsm_conf, tokens, tmp_path, monkeypatch):
    token, config = existing_token_config(softhsm_conf, tokens, tmp_path, monkeypatch)
    production = replace(config, rehearsal=False)
    with pytest.raises(ConfigError, match=r"--non-interactive is only for rehearsals"):
        run_ceremony(production, quiet())
    assert list(tmp_path.iterdir()) == []


# --- the interactive script ------------------------------------------------------------------

def test_the_interactive_ceremony_shows_each_share_to_its_holder_alone(softhsm_conf, tmp_path):
    config = rehearsal_config(softhsm_conf, tmp_path)

    def activation(io, prompt):
        holder = prompt.split(":")[0]
        asked = sum(p.startswith(holder) for p in io.prompts)
        if holder == "Sam Holder":
            return ""  # skips
        if holder == "Kim Holder" and asked == 1:
            return io.shown["Lee Holder"]  # someone else's share
        if holder == "Kim Holder" and asked == 2:
            words = io.shown["Kim Holder"].split()
            return " ".join(words[:-1] + ["academic" if words[-1] != "academic" else "acid"])  # corrupted
        return io.shown[holder]

    io = ScriptedIO(activation=activation)
    result = run_ceremony(config, io)
    report = verify_bundle_dir(result.bundle_dir)
    assert "witnesses Wyn Witness attested the transcript head" in report.checks
    trustees = ["Tao Trustee", "Uma Trustee", "Vic Trustee"]
    assert io.show_order == ["Sam Holder", "Kim Holder", "Lee Holder", *trustees]
    assert len(set(io.shown.values())) == 6
    said = "\n".join(io.said)
    assert result.pin not in said and not any(share in said for share in io.shown.values())
    assert any("is not share 2, the one Kim Holder received" in s for s in io.said)
    assert any("the share typed by Kim Holder is corrupted: its checksum does not match" in s for s in io.said)
    # roll call of everyone, each holder after receiving their share, then the witness
    assert io.acks == [o.name for o in config.officials] + ["Sam Holder", "Kim Holder", "Lee Holder", *trustees,
                                                           "Wyn Witness"]
    assert next(e.data for e in entries_of(result) if e.step == "sealing-activation-test")["holders"] == trustees[:2]
    assert io.confirms >= 13
    assert result.share_files == () and result.shares_dir is None
    assert not (tmp_path / "rehearsal-shares").exists()
    entries = parse_transcript((result.bundle_dir / "transcript.jsonl").read_bytes())
    assert next(e.data for e in entries if e.step == "activation-test")["holders"] == ["Kim Holder", "Lee Holder"]
    assert all(e.data["acknowledged"] for e in entries if e.step == "share-handed-over")


def test_too_few_shares_in_the_interactive_activation_test_aborts(softhsm_conf, tmp_path):
    config = rehearsal_config(softhsm_conf, tmp_path)
    io = ScriptedIO(activation=lambda io, prompt: io.shown["Lee Holder"] if prompt.startswith("Lee") else "")
    with pytest.raises(ShareError, match=r"fewer than 2 shares were entered \(1\)"):
        run_ceremony(config, io)
    assert not config.out_dir.exists()
    aborted = config.out_dir.with_name("rehearsal.aborted-1")
    entries = parse_transcript((aborted / "transcript.jsonl").read_bytes())
    assert entries[-1].step == "ceremony-aborted" and "fewer than 2 shares" in entries[-1].data["reason"]


def test_aborting_after_the_pin_is_set_keeps_the_transcript_so_far(softhsm_conf, tmp_path):
    config = rehearsal_config(softhsm_conf, tmp_path)
    io = ScriptedIO(abort_at="Activation test")
    with pytest.raises(CeremonyAbortedError, match=r"aborted at the administrator's request"):
        run_ceremony(config, io)
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["rehearsal.aborted-1"]
    entries = parse_transcript((tmp_path / "keys" / "rehearsal.aborted-1" / "transcript.jsonl").read_bytes())
    assert [e.step for e in entries][-2:] == ["user-pin-set", "ceremony-aborted"]
    assert any("CEREMONY ABORTED" in s for s in io.said)


def test_aborting_before_anything_changed_writes_nothing(softhsm_conf, tmp_path):
    config = rehearsal_config(softhsm_conf, tmp_path)
    with pytest.raises(CeremonyAbortedError):
        run_ceremony(config, ScriptedIO(abort_at="Split a new user PIN"))
    assert list(tmp_path.iterdir()) == []
    from hsm_signer.softhsm import token_exists
    assert not token_exists(softhsm_conf, config.hsm.token_label)


def test_the_transcript_refuses_to_record_a_secret():
    transcript = Transcript()
    transcript.forbid("0123456789abcdef0123456789abcdef")
    transcript.append("fine", "me", {"x": 1})
    with pytest.raises(RuntimeError, match=r"refusing to record step 'leak'"):
        transcript.append("leak", "me", {"pin": "0123456789abcdef0123456789abcdef"})
    assert len(transcript.entries) == 1
