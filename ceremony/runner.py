"""The scripted key ceremony: every step, in order, recorded in the hash-chained transcript.

Call :func:`run_ceremony` with a validated :class:`~ceremony.config.CeremonyConfig` and a
:class:`~ceremony.io.CeremonyIO`. The script (CEREMONY.md explains it for officials):

 1. open the ceremony, record the configuration; roll call of the officials
 2. record the environment (tool versions, PKCS#11 module, token and serial)
 3. check before changing anything: output directories are new, the token exists (or, for
    a SoftHSM rehearsal with ``initialise = true``, does not), no key label is taken, and
    the token passes every readiness check of ``hsm check`` (mechanisms, throwaway session
    keys from the ceremony's templates, extraction refused, the split PIN's length)
 4. draw a random PIN and split it m-of-n (SLIP-39); hand each holder their share (on
    screen to that holder alone, or, in a non-interactive rehearsal, in a 0600 file
    marked REHEARSAL MATERIAL outside the bundle)
 5. make it the token's user PIN (C_SetPIN replacing the initial PIN, or at SoftHSM
    initialisation); activation test: m shares rebuild it and log in
 6. generate each key in the HSM; read its attributes back; try to read and to wrap it
    out (both must be refused); self-test it
 6b. with a ``[sealing]`` table: on the sealing token (its own token), split a second
    random PIN m-of-n among the tally trustees, set it, test it, and generate the
    derive-only P-256 sealing key (attributes, extraction attempts, a derive self-test
    whose throwaway peer key is recorded so anyone can recompute it); then export the
    public keys (``keys.json``)
 7. witnesses attest the transcript head; close; every new signing key signs the head
 8. write the bundle ``keys.json``, ``transcript.jsonl``, ``transcript.sig.json``,
    ``SUMMARY.md`` into a new directory with exclusive create.

Nothing on the token or disk changes before step 4; a refusal in step 3 leaves everything
as it was. If the ceremony fails after that, the transcript so far (with the error) is
written to ``<bundle dir>.aborted-<n>/`` and the error is raised again.

This module must never write a PIN or a share into the transcript, the bundle, a log or
an error message; only rehearsal share files ever hold a share on disk.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import platform
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hsm_signer import __version__, softhsm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.bundle import ECDH_P256, KEYS_FILE, SEALING, KeyBundle, KeyEntry
from hsm_signer.errors import ConfigError, HsmConfigError, HsmSignerError
from hsm_signer.hsm import Hsm, pin_source
from hsm_signer.hsm import probe
from hsm_signer.hsm.manage import generate_mac_key, generate_sealing_key, generate_signing_key, key_attributes
from hsm_signer.hsm.readiness import MECHANISMS, KeyNeed, check_token
from hsm_signer.hsm.shares import (
    PIN_LENGTH, PinSplit, ShareError, combine_shares, decode_share, normalise_mnemonic, read_share_file, share_file_text, split_new_pin,
)
from hsm_signer.signer import Signer, verify_signature

from . import evidence
from .config import CeremonyConfig, KeySpec, Official, SealingSpec
from .io import CeremonyIO
from .output import make_new_dir, next_free_dir, refuse_existing, write_new_files, write_secret_file
from .signatures import SIGNATURES_FILE, sign_head
from .summary import SUMMARY_FILE, ceremony_summary
from .transcript import TRANSCRIPT_FILE, Transcript, head_groups, utc_now

TOOL = "hsm-signer"
PACKAGES = ("python-pkcs11", "cryptography", "shamir-mnemonic")


@dataclass(frozen=True)
class CeremonyResult:
    """What a finished ceremony produced.

    ``share_files`` (one per holder, in config order) and ``trustee_share_files`` (one
    per tally trustee, for the sealing token) exist only for a non-interactive rehearsal;
    ``pin`` is set only for a rehearsal, so the caller (the demo) can use the token
    without asking holders for shares.
    """

    ceremony_id: str
    bundle_dir: Path
    bundle: KeyBundle
    transcript_head: str
    share_files: tuple[Path, ...] = ()
    trustee_share_files: tuple[Path, ...] = ()
    shares_dir: Path | None = None
    pin: str | None = field(default=None, repr=False)


def run_ceremony(config: CeremonyConfig, io: CeremonyIO, out_dir: Path | str | None = None, *,
                 shares_dir: Path | str | None = None) -> CeremonyResult:
    """Run the whole ceremony of ``config``; write the bundle to ``out_dir`` (default from the config)."""
    return _Ceremony(config, io, Path(out_dir) if out_dir else config.out_dir,
                     Path(shares_dir) if shares_dir else config.shares_dir).run()


@dataclass(frozen=True)
class _CeremonyPin:
    """A PIN the ceremony holds in memory for the moment it needs it."""

    pin: str = field(repr=False)
    where: str = "the ceremony"
    production_grade: bool = True

    def get_pin(self) -> str:
        return self.pin

    def describe(self) -> str:
        return self.where


def _derive_self_test(deriver: Any) -> dict[str, str]:
    """Derive with a throwaway peer key; its private scalar is recorded so anyone can recompute ``dh``."""
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    dh = deriver.derive(point)
    return {"peer_private": format(peer.private_numbers().private_value, "064x"),
            "peer_point": point.hex(), "dh": dh.hex()}


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


class _Ceremony:
    def __init__(self, config: CeremonyConfig, io: CeremonyIO, out_dir: Path, shares_dir: Path):
        self.config = config
        self.io = io
        self.out_dir = out_dir.resolve()
        self.shares_dir = shares_dir.resolve()
        self.transcript = Transcript()
        self.hsm: Hsm | None = None
        self.sealing_hsm: Hsm | None = None
        self.changed = False  # set once the token or the disk has been changed
        self.step_number = 0
        self.admin = config.administrator.name
        self._initial_pin = ""
        self._sealing_initial_pin = ""
        self._share_files: list[Path] = []
        self._trustee_files: list[Path] = []

    # --- frame ------------------------------------------------------------------------
    def run(self) -> CeremonyResult:
        try:
            return self._script()
        except BaseException as exc:
            if self.changed:
                self._write_aborted(exc)
            raise
        finally:
            for hsm in (self.hsm, self.sealing_hsm):
                if hsm is not None:
                    hsm.close()

    def _step(self, title: str, what_happens: str) -> None:
        self.step_number += 1
        self.io.say(f"\n=== Step {self.step_number}: {title} ===\n{what_happens}")
        self.io.confirm(f"Administrator {self.admin}: go ahead with step {self.step_number}?")

    def _record(self, step: str, actor: str, data: dict[str, Any]) -> None:
        self.transcript.append(step, actor, data)
        self.io.say(f"  recorded #{self.transcript.entries[-1].seq}: {step}")

    def _write_aborted(self, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, HsmSignerError) else f"{type(exc).__name__} (internal error)"
        try:
            self.transcript.append("ceremony-aborted", self.admin, {"reason": reason})
            target = next_free_dir(self.out_dir, ".aborted")
            write_new_files(target, {TRANSCRIPT_FILE: self.transcript.to_bytes()})
            self.io.say(f"\nCEREMONY ABORTED: {reason}\nThe transcript so far is in {target}; "
                        "follow the abort procedure in CEREMONY.md.")
        except Exception as write_error:  # the original error matters more
            self.io.say(f"\nCEREMONY ABORTED: {reason}\n(could not save the transcript: {write_error})")

    # --- the script -----------------------------------------------------------------------
    def _script(self) -> CeremonyResult:
        cfg = self.config
        if not self.io.interactive and not cfg.rehearsal:
            raise ConfigError("--non-interactive is only for rehearsals (ceremony.rehearsal = true): "
                              "a real ceremony needs its officials to confirm, acknowledge and receive shares")
        self._open()
        self._environment()
        token_info = self._preflight()
        split = self._split_and_hand_over()
        self._set_pin(split, token_info)
        self._activation_test(split)
        entries, signers = self._generate_keys()
        if cfg.sealing is not None:
            entries.append(self._sealing_stage(cfg.sealing))
        bundle = KeyBundle(ceremony_id=cfg.ceremony_id, created=utc_now(), keys=tuple(entries))
        keys_json = bundle.to_json().encode("utf-8")
        self._export(bundle, keys_json)
        self._attest()
        self._close(bundle)
        return self._publish(bundle, keys_json, signers, split)

    def _open(self) -> None:
        cfg = self.config
        kind = "REHEARSAL" if cfg.rehearsal else "PRODUCTION"
        self.io.say(f"hsm-signer key ceremony {cfg.ceremony_id} ({kind}, "
                    f"{'interactive' if self.io.interactive else 'non-interactive'})")
        self._step("Open the ceremony", "The configuration is recorded as the first transcript entry.")
        self._record("ceremony-opened", self.admin, {
            "ceremony_id": cfg.ceremony_id, "tool": f"{TOOL} {__version__}",
            "interactive": self.io.interactive, "config": cfg.record(),
        })
        self._step("Roll call", "Every official confirms they are present.")
        present = []
        if self.io.interactive:
            for official in cfg.officials:
                self.io.acknowledge(official.name, f"{official.name} ({', '.join(official.roles)}): are you present?")
                present.append(official.name)
        self._record("roll-call", self.admin, {
            "present": present,
            "mode": "acknowledged by each official" if self.io.interactive
            else "non-interactive rehearsal: nobody was asked",
        })

    def _environment(self) -> None:
        self._step("Record the environment", "Tool versions and the machine running the ceremony.")
        self._record("environment", TOOL, {
            "hsm_signer": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "packages": _versions(),
            "pkcs11_module": self.config.hsm.module,
        })

    def _preflight(self) -> dict[str, Any]:
        cfg = self.config
        self._step("Check before changing anything",
                   "Output directories must be new, the token must be as expected, no key label may exist.")
        refuse_existing(self.out_dir, "output directory", "choose another ceremony id or --out")
        if not self.io.interactive:
            refuse_existing(self.shares_dir, "rehearsal shares directory",
                            "move it away or choose another output.shares_dir")
        if cfg.hsm.softhsm_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(cfg.hsm.softhsm_conf)
        checked: dict[str, Any] = {"output_dir": self.out_dir.name, "labels_free": [k.label for k in cfg.keys]}
        if cfg.hsm.initialise:
            conf = self._softhsm_conf()
            if softhsm.token_exists(conf, cfg.hsm.token_label):
                raise HsmConfigError(
                    f"a SoftHSM token labelled {cfg.hsm.token_label!r} already exists; initialise = true makes a "
                    "new token: choose another hsm.token_label, or set initialise = false and give hsm.initial_pin")
            checked["token"] = "absent, will be initialised (SoftHSM rehearsal)"
            if cfg.sealing is not None:
                checked["sealing_token"] = self._preflight_sealing(cfg.sealing)
            self._record("preflight", TOOL, checked)
            return {}
        assert cfg.hsm.initial_pin is not None
        self._initial_pin = pin_source(cfg.hsm.initial_pin).get_pin()
        self.hsm = Hsm(cfg.hsm.module, token_label=cfg.hsm.token_label, pin_source=_CeremonyPin(self._initial_pin, "the initial PIN given to the ceremony")).open()
        info = self.hsm.token_info()
        taken = [k.label for k in cfg.keys if self.hsm.key_exists(k.label)]
        if taken:
            raise HsmConfigError(
                f"key label{'s' if len(taken) > 1 else ''} {', '.join(map(repr, taken))} already exist"
                f"{'' if len(taken) > 1 else 's'} on HSM token {cfg.hsm.token_label!r}; labels are never reused: "
                "choose new labels in [[keys]] (nothing was changed)")
        report = check_token(self.hsm, [KeyNeed(k.label, k.purpose, k.algorithm) for k in cfg.keys],
                             pin_length=PIN_LENGTH)
        self.io.say(report.table())
        if not report.fit:
            raise HsmConfigError(
                f"HSM token {cfg.hsm.token_label!r} is not fit for the ceremony: {report.reasons()}. Nothing was "
                "changed (its PIN still works); `hsm-signer hsm check --ceremony CONFIG` prints the whole report")
        checked["mechanisms"] = {k.label: [f"CKM_{m.name}" for m, _ in MECHANISMS[k.algorithm]] for k in cfg.keys}
        checked["readiness"] = report.to_dict()["checks"]
        checked["token"] = info
        if cfg.sealing is not None:
            checked["sealing_token"] = self._preflight_sealing(cfg.sealing)
        self._record("preflight", TOOL, checked)
        return info

    def _preflight_sealing(self, spec: SealingSpec) -> Any:
        """Check the sealing token as the signing token is checked; change nothing."""
        if spec.initialise:
            if softhsm.token_exists(self._softhsm_conf(), spec.token_label):
                raise HsmConfigError(
                    f"a SoftHSM token labelled {spec.token_label!r} already exists; sealing.initialise = true makes "
                    "a new token: choose another sealing.token_label")
            return "absent, will be initialised (SoftHSM rehearsal)"
        assert spec.initial_pin is not None
        self._sealing_initial_pin = pin_source(spec.initial_pin).get_pin()
        self.sealing_hsm = Hsm(self.config.hsm.module, token_label=spec.token_label, pin_source=_CeremonyPin(
            self._sealing_initial_pin, "the sealing token's initial PIN given to the ceremony")).open()
        if self.sealing_hsm.key_exists(spec.label):
            raise HsmConfigError(f"key label {spec.label!r} already exists on the sealing token {spec.token_label!r}; "
                                 "labels are never reused: choose a new sealing.label (nothing was changed)")
        report = check_token(self.sealing_hsm, [KeyNeed(spec.label, SEALING, ECDH_P256)], pin_length=PIN_LENGTH)
        self.io.say(report.table())
        if not report.fit:
            raise HsmConfigError(
                f"the sealing token {spec.token_label!r} is not fit for the ceremony: {report.reasons()}. Nothing was "
                "changed (its PIN still works)")
        return {"token": self.sealing_hsm.token_info(),
                "mechanisms": [f"CKM_{m.name}" for m, _ in MECHANISMS[ECDH_P256]],
                "readiness": report.to_dict()["checks"]}

    def _softhsm_conf(self) -> Path:
        conf = self.config.hsm.softhsm_conf or (Path(os.environ["SOFTHSM2_CONF"]) if os.environ.get("SOFTHSM2_CONF") else None)
        if conf is None:
            raise ConfigError("initialise = true needs the SoftHSM configuration: set hsm.softhsm_conf or SOFTHSM2_CONF",
                              "hsm.softhsm_conf")
        problem = softhsm.conf_problem(conf)
        if problem is not None:  # found here, before any share is handed out, not at step 6
            raise HsmConfigError(f"{problem}; create it as ceremony/CEREMONY.md section 7 shows (nothing was changed)")
        return conf

    # --- the PIN ------------------------------------------------------------------------------
    def _split_and_hand_over(self) -> PinSplit:
        cfg = self.config
        holders = cfg.share_holders
        self._step("Split a new user PIN",
                   f"A random PIN is drawn and split into {len(holders)} SLIP-39 shares; any {cfg.threshold} "
                   "rebuild it. Nobody sees the PIN. Each holder receives one share.")
        split = split_new_pin(cfg.threshold, len(holders))
        self.transcript.forbid(split.pin, *split.shares)
        self._record("pin-split", self.admin, {
            "scheme": "SLIP-39 (shamir-mnemonic), one group, 128-bit secret; PIN = the secret as 32 hex digits",
            "threshold": cfg.threshold, "shares": len(holders),
            "holders": [{"index": i, "holder": h.name} for i, h in enumerate(holders, 1)],
            "statement": "the PIN and the shares are not recorded anywhere in this transcript or bundle",
        })
        if not self.io.interactive:
            make_new_dir(self.shares_dir, mode=0o700)
            self.changed = True
        for index, (holder, share) in enumerate(zip(holders, split.shares), 1):
            self._hand_over(holder, index, share, split)
        return split

    def _hand_over(self, holder: Official, index: int, share: str, split: PinSplit, *, sealing: bool = False) -> None:
        cfg = self.config
        what = "the SEALING token's PIN (tally trustee)" if sealing else "the PIN"
        heading = (f"Share {index} of {split.count} for {holder.name} (any {split.threshold} rebuild {what}), "
                   f"ceremony {cfg.ceremony_id}:")
        if self.io.interactive:
            self.io.show_share(holder.name, heading, share)
            self.io.acknowledge(holder.name, f"{holder.name}: you have written down share {index} and the screen is clear.")
            delivery, acknowledged = "shown on screen to the holder alone", True
        else:
            name = f"{'trustee' if sealing else 'share'}-{holder.slug}.txt"
            path = write_secret_file(self.shares_dir / name, share_file_text(
                share, holder=holder.name, index=index, threshold=split.threshold, count=split.count,
                ceremony_id=cfg.ceremony_id, rehearsal=True, sealing=sealing))
            (self._trustee_files if sealing else self._share_files).append(path)
            delivery, acknowledged = f"written to {name} (REHEARSAL MATERIAL, not in the bundle)", False
        self._record("sealing-share-handed-over" if sealing else "share-handed-over", holder.name, {
            "holder": holder.name, "index": index, "delivery": delivery, "acknowledged": acknowledged,
        })

    def _set_pin(self, split: PinSplit, token_info: dict[str, Any]) -> None:
        cfg = self.config
        if cfg.hsm.initialise:
            self._step("Initialise the token", "SoftHSM rehearsal: a new token is created with the split PIN "
                       "as its user PIN; its security-officer PIN is random and discarded.")
            self.changed = True
            softhsm.init_token(self._softhsm_conf(), cfg.hsm.token_label,
                               so_pin=secrets.token_hex(16), user_pin=split.pin)
            self._record("user-pin-set", self.admin, {
                "method": "token initialised by softhsm2-util with the split PIN as user PIN (SoftHSM rehearsal)",
                "token_label": cfg.hsm.token_label,
                "so_pin": "random, discarded: this rehearsal token cannot be reset",
            })
            return
        self._step("Set the user PIN", "The token's initial user PIN is replaced by the split PIN (C_SetPIN). "
                   "From now on only the share holders, together, can activate the token.")
        assert self.hsm is not None
        self.changed = True
        probe.change_user_pin(self.hsm, self._initial_pin, split.pin)
        self._initial_pin = ""
        self._record("user-pin-set", self.admin, {
            "method": "C_SetPIN replaced the initial user PIN", "token_label": cfg.hsm.token_label,
            "token_serial": token_info.get("serial"),
        })

    def _activation_test(self, split: PinSplit) -> None:
        cfg = self.config
        self._step("Activation test", f"{cfg.threshold} share holders rebuild the PIN from their shares; "
                   "the token must accept it.")
        if self.io.interactive:
            used, pin = self._collect_shares(split, cfg.share_holders, cfg.threshold)
        else:
            holders = cfg.share_holders[-cfg.threshold:]
            files = self._share_files[-cfg.threshold:]
            pin = combine_shares([(f"share file {p.name}", read_share_file(p)[0]) for p in files])
            used = [h.name for h in holders]
        if pin != split.pin:
            raise ShareError("the shares rebuilt a different PIN than the one set; stop and start again")
        if self.hsm is not None:
            self.hsm.close()  # log out, so the next login really tests the rebuilt PIN
        self.hsm = Hsm(cfg.hsm.module, token_label=cfg.hsm.token_label, pin_source=_CeremonyPin(pin, "the PIN rebuilt from the shares in the ceremony")).open()
        info = self.hsm.token_info()
        if cfg.hsm.initialise:
            for key in cfg.keys:
                probe.require_mechanisms(self.hsm, key.algorithm, key.label)
        self._record("activation-test", self.admin, {
            "holders": used, "shares_used": len(used), "threshold": cfg.threshold,
            "result": "the PIN rebuilt from the shares logged in to the token", "token": info,
        })

    def _collect_shares(self, split: PinSplit, holders: tuple[Official, ...], threshold: int) -> tuple[list[str], str]:
        collected: list[tuple[str, str]] = []
        used: list[str] = []
        for index, holder in enumerate(holders, 1):
            if len(collected) == threshold:
                break
            while True:
                text = self.io.read_share(f"{holder.name}: type your share (not shown), or press Enter to skip: ")
                if not text.strip():
                    break
                where = f"the share typed by {holder.name}"
                try:
                    decode_share(where, text)  # says precisely what is corrupted
                    if normalise_mnemonic(text) != split.shares[index - 1]:
                        raise ShareError(f"{where} is not share {index}, the one {holder.name} received "
                                         "in this ceremony; check the written copy")
                except ShareError as exc:
                    self.io.say(f"  {exc}")
                    continue
                collected.append((where, text))
                used.append(holder.name)
                break
        if len(collected) < threshold:
            raise ShareError(f"fewer than {threshold} shares were entered ({len(collected)}); "
                             "the activation test needs the threshold")
        return used, combine_shares(collected)

    # --- keys ---------------------------------------------------------------------------------
    def _generate_keys(self) -> tuple[list[KeyEntry], list[tuple[KeyEntry, Signer]]]:
        entries, signers = [], []
        for spec in self.config.keys:
            self._step(f"Generate the {spec.purpose} key",
                       f"{spec.algorithm} key {spec.label!r} is generated inside the HSM as a sensitive, "
                       "non-extractable token object, checked, and self-tested.")
            entry, signer = self._generate(spec)
            entries.append(entry)
            if signer is not None:
                signers.append((entry, signer))
        return entries, signers

    def _generate(self, spec: KeySpec) -> tuple[KeyEntry, Signer | None]:
        hsm = self.hsm
        assert hsm is not None
        key_id = hsm.random_bytes(8).hex()
        signer: Signer | None = None
        if spec.is_signing_key:
            signer = generate_signing_key(hsm, spec.label, bytes.fromhex(key_id), spec.algorithm)
            entry = KeyEntry.for_signing_key(spec.purpose, spec.label, key_id, signer.public_key_der,
                                             f"{self.config.ceremony_id}/{spec.purpose}")
        else:
            mac = generate_mac_key(hsm, spec.label, bytes.fromhex(key_id))
            entry = KeyEntry.for_mac_key(spec.label, key_id)
        attributes = key_attributes(hsm, spec.label)
        self._record("key-generated", self.admin, {
            "purpose": spec.purpose, "label": spec.label, "algorithm": spec.algorithm,
            "attributes": attributes, "key": entry.to_dict(),
        })
        problems = evidence.attribute_problems(attributes)
        if attributes.get("id") != key_id:
            problems.append(f"CKA_ID is {attributes.get('id')!r}, expected {key_id}")
        if problems:
            raise HsmConfigError(f"key {spec.label!r} does not have the required attributes: {'; '.join(problems)}")

        outcomes = {"read_value": probe.try_read_value(hsm, spec.label), "wrap": probe.try_wrap_out(hsm, spec.label)}
        self._record("extraction-attempts", TOOL, {"label": spec.label, **outcomes})
        problems = evidence.extraction_problems(outcomes)
        if problems:
            raise HsmConfigError(f"key {spec.label!r} can be extracted: {'; '.join(problems)}; do not use this token")

        nonce = hsm.random_bytes(32).hex()
        if signer is not None:
            message = evidence.self_test_message(self.config.ceremony_id, spec.label, nonce)
            signature = signer.sign(message)
            verify_signature(entry.public_key_der, message, signature)  # with the exported public key
            self._record("self-test", TOOL, {
                "label": spec.label, "purpose": spec.purpose, "nonce": nonce,
                "signature": base64.b64encode(signature).decode("ascii"),
                "result": "signature verified with the exported public key",
            })
        else:
            data = bytes.fromhex(nonce)
            first, second, other = mac.mac(data), mac.mac(data), mac.mac(data + b"\x00")
            if not (len(first) == 32 and first == second and first != other):
                raise HsmConfigError(f"HMAC key {spec.label!r} failed its self-test")
            self._record("self-test", TOOL, {
                "label": spec.label, "purpose": spec.purpose, "nonce": nonce,
                "result": "HMAC-SHA256 gives 32 bytes, the same twice, and differs for other data",
            })
        return entry, signer

    # --- the sealing key (its own token, the tally trustees' PIN) ------------------------------
    def _sealing_stage(self, spec: SealingSpec) -> KeyEntry:
        cfg = self.config
        trustees = cfg.tally_trustees
        self._step("Split the sealing token's PIN among the tally trustees",
                   f"A second random PIN, for the sealing token {spec.token_label!r} only, is split into "
                   f"{len(trustees)} SLIP-39 shares; any {spec.threshold} tally trustees rebuild it. The share "
                   "holders of the signing token never see it: the running service cannot open a ballot.")
        split = split_new_pin(spec.threshold, len(trustees))
        self.transcript.forbid(split.pin, *split.shares)
        self._record("sealing-pin-split", self.admin, {
            "scheme": "SLIP-39 (shamir-mnemonic), one group, 128-bit secret; PIN = the secret as 32 hex digits",
            "token_label": spec.token_label, "threshold": spec.threshold, "shares": len(trustees),
            "holders": [{"index": i, "holder": t.name} for i, t in enumerate(trustees, 1)],
            "statement": "the PIN and the shares are not recorded anywhere in this transcript or bundle",
        })
        for index, (trustee, share) in enumerate(zip(trustees, split.shares), 1):
            self._hand_over(trustee, index, share, split, sealing=True)
        self._set_sealing_pin(spec, split)
        self._sealing_activation_test(spec, split)
        self._step("Generate the sealing key",
                   f"EC P-256 key {spec.label!r} is generated inside the sealing token, usable only to derive "
                   "(CKM_ECDH1_DERIVE), sensitive, non-extractable; checked and self-tested.")
        return self._generate_sealing(spec)

    def _set_sealing_pin(self, spec: SealingSpec, split: PinSplit) -> None:
        if spec.initialise:
            self._step("Initialise the sealing token", "SoftHSM rehearsal: a second new token is created with the "
                       "trustees' split PIN as its user PIN; its security-officer PIN is random and discarded.")
            self.changed = True
            softhsm.init_token(self._softhsm_conf(), spec.token_label, so_pin=secrets.token_hex(16), user_pin=split.pin)
            method = "token initialised by softhsm2-util with the trustees' split PIN as user PIN (SoftHSM rehearsal)"
        else:
            self._step("Set the sealing token's user PIN", "Its initial user PIN is replaced by the trustees' split PIN.")
            assert self.sealing_hsm is not None
            self.changed = True
            probe.change_user_pin(self.sealing_hsm, self._sealing_initial_pin, split.pin)
            self._sealing_initial_pin = ""
            method = "C_SetPIN replaced the initial user PIN"
        self._record("sealing-pin-set", self.admin, {"method": method, "token_label": spec.token_label})

    def _sealing_activation_test(self, spec: SealingSpec, split: PinSplit) -> None:
        cfg = self.config
        self._step("Sealing token activation test", f"{spec.threshold} tally trustees rebuild the sealing PIN.")
        if self.io.interactive:
            used, pin = self._collect_shares(split, cfg.tally_trustees, spec.threshold)
        else:
            files = self._trustee_files[-spec.threshold:]
            pin = combine_shares([(f"share file {p.name}", read_share_file(p)[0]) for p in files])
            used = [t.name for t in cfg.tally_trustees[-spec.threshold:]]
        if pin != split.pin:
            raise ShareError("the trustees' shares rebuilt a different PIN than the one set; stop and start again")
        if self.sealing_hsm is not None:
            self.sealing_hsm.close()
        self.sealing_hsm = Hsm(cfg.hsm.module, token_label=spec.token_label, pin_source=_CeremonyPin(
            pin, "the sealing PIN rebuilt from the trustees' shares")).open()
        info = self.sealing_hsm.token_info()
        probe.require_mechanisms(self.sealing_hsm, ECDH_P256, spec.label)
        self._record("sealing-activation-test", self.admin, {
            "holders": used, "shares_used": len(used), "threshold": spec.threshold,
            "result": "the PIN rebuilt from the trustees' shares logged in to the sealing token", "token": info,
        })

    def _generate_sealing(self, spec: SealingSpec) -> KeyEntry:
        hsm = self.sealing_hsm
        assert hsm is not None
        key_id = hsm.random_bytes(8).hex()
        deriver = generate_sealing_key(hsm, spec.label, bytes.fromhex(key_id))
        entry = KeyEntry.for_sealing_key(spec.label, key_id, deriver.public_key)
        attributes = key_attributes(hsm, spec.label)
        self._record("key-generated", self.admin, {
            "purpose": SEALING, "label": spec.label, "algorithm": ECDH_P256, "token_label": spec.token_label,
            "attributes": attributes, "key": entry.to_dict(),
        })
        problems = evidence.attribute_problems(attributes, evidence.SEALING_EXPECTED_ATTRIBUTES)
        if attributes.get("id") != key_id:
            problems.append(f"CKA_ID is {attributes.get('id')!r}, expected {key_id}")
        if problems:
            raise HsmConfigError(f"sealing key {spec.label!r} does not have the required attributes: {'; '.join(problems)}")
        outcomes = {"read_value": probe.try_read_value(hsm, spec.label), "wrap": probe.try_wrap_out(hsm, spec.label)}
        self._record("extraction-attempts", TOOL, {"label": spec.label, **outcomes})
        problems = evidence.extraction_problems(outcomes)
        if problems:
            raise HsmConfigError(f"sealing key {spec.label!r} can be extracted: {'; '.join(problems)}; do not use this token")
        record = _derive_self_test(deriver)
        problems = evidence.derive_self_test_problems(record, deriver.public_key)
        if problems:
            raise HsmConfigError(f"sealing key {spec.label!r} failed its derive self-test: {'; '.join(problems)}")
        self._record("self-test", TOOL, {
            "label": spec.label, "purpose": SEALING, **record,
            "result": "the HSM's ECDH with a throwaway peer key equals ECDH of that key with the published key",
        })
        return entry

    def _export(self, bundle: KeyBundle, keys_json: bytes) -> None:
        self._step("Export the public keys", "keys.json lists every key; its hash goes into the transcript.")
        self._record("public-keys-exported", self.admin, {
            "file": KEYS_FILE, "sha256": hashlib.sha256(keys_json).hexdigest(), "created": bundle.created,
            "keys": [k.label for k in bundle.keys],
        })
        for key in bundle.keys:
            if key.is_signing_key:
                self.io.say(f"  {key.purpose}: {key.note_verifier_key}\n    fingerprint {key.fingerprint}")

    def _attest(self) -> None:
        self._step("Witness attestation", "Each witness confirms they watched every step.")
        if not self.io.interactive:
            self._record("witness-attestation", self.admin, {
                "witnesses": [w.name for w in self.config.witnesses], "acknowledged": False,
                "mode": "non-interactive rehearsal: witnesses were not asked",
            })
            return
        for witness in self.config.witnesses:
            head = self.transcript.head  # recorded (the verifier checks it); witnesses copy the final head at the close
            self.io.acknowledge(witness.name, f"{witness.name}: you watched every step.")
            self._record("witness-attestation", witness.name, {
                "witness": witness.name, "acknowledged": True, "attested_head": head,
            })

    def _close(self, bundle: KeyBundle) -> None:
        self._step("Close the ceremony", "The transcript is closed and signed by every new signing key.")
        self._record("ceremony-closed", self.admin, {
            "keys": [k.label for k in bundle.keys],
            "signing_keys": [k.label for k in bundle.keys if k.is_signing_key],
            "bundle": self.out_dir.name,
        })

    def _publish(self, bundle: KeyBundle, keys_json: bytes, signers: list[tuple[KeyEntry, Signer]],
                 split: PinSplit) -> CeremonyResult:
        cfg = self.config
        transcript = self.transcript.to_bytes()
        head = self.transcript.head
        signatures = sign_head(cfg.ceremony_id, len(self.transcript.entries), head, signers)
        summary = ceremony_summary(self.transcript.entries, head).encode("utf-8")
        write_new_files(self.out_dir, {
            KEYS_FILE: keys_json, TRANSCRIPT_FILE: transcript, SIGNATURES_FILE: signatures, SUMMARY_FILE: summary,
        })
        grouped = "\n".join(f"  {line}" for line in head_groups(head).splitlines())
        self.io.say(f"\nCeremony {cfg.ceremony_id} complete. Bundle: {self.out_dir}\n"
                    f"Transcript head (witnesses: write it down; `hsm-signer ceremony verify` prints the same):\n"
                    f"{grouped}\n"
                    f"Publish the bundle; anyone can check it with: hsm-signer ceremony verify {self.out_dir}")
        if self._share_files:
            self.io.say(f"REHEARSAL share files (never use for a real election): {self.shares_dir}")
        return CeremonyResult(
            ceremony_id=cfg.ceremony_id, bundle_dir=self.out_dir, bundle=bundle, transcript_head=head,
            share_files=tuple(self._share_files), trustee_share_files=tuple(self._trustee_files),
            shares_dir=self.shares_dir if self._share_files else None,
            pin=split.pin if cfg.rehearsal else None,
        )
