"""Key retirement: destroy named keys of a ceremony in the HSM, recorded in a new signed transcript.

:func:`run_retirement` first verifies the ceremony bundle the keys come from, opens the
token with the activation PIN (normally m shares), and checks that each key on the token
*is* the published key (same public key fingerprint, or same id for the HMAC key) before
anything is touched. Then, just before destruction, each retired signing key signs the
transcript head: proof that the retirer held exactly these keys. The keys are destroyed
and the results appended; those last entries are hash-chained to the signed part but
cannot be signed (the keys no longer exist), and the verifier accepts only the expected
destruction records there.

The bundle goes to a new directory, by default ``<keys dir>/<ceremony-id>-retire-<n>/``:
``retired.json``, ``transcript.jsonl``, ``transcript.sig.json``, ``SUMMARY.md``.

This module must never record a PIN or a share, and never destroy a key it has not
matched against the published bundle.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsm_signer import __version__
from hsm_signer.bundle import KEYS_FILE, KeyBundle, KeyEntry
from hsm_signer.errors import ConfigError, HsmConfigError, HsmSignerError
from hsm_signer.hsm import Hsm, pin_source
from hsm_signer.hsm.manage import destroy_key, key_attributes
from hsm_signer.signer import Signer, fingerprint

from . import evidence
from .io import CeremonyIO
from .output import next_free_dir, refuse_existing, write_new_files
from .retire_config import RetireConfig
from .signatures import SIGNATURES_FILE, sign_head
from .summary import SUMMARY_FILE, retirement_summary
from .transcript import TRANSCRIPT_FILE, Transcript, transcript_head
from .verify import verify_bundle_dir
from .verify_retirement import RETIRED_FILE, retired_json

TOOL = "hsm-signer"


@dataclass(frozen=True)
class RetirementResult:
    retirement_id: str
    bundle_dir: Path
    retired: tuple[KeyEntry, ...]
    transcript_head: str


def run_retirement(config: RetireConfig, io: CeremonyIO, out_dir: Path | str | None = None) -> RetirementResult:
    """Destroy the keys ``config`` names and write the signed retirement bundle."""
    return _Retirement(config, io, Path(out_dir) if out_dir else None).run()


class _Retirement:
    def __init__(self, config: RetireConfig, io: CeremonyIO, out_dir: Path | None):
        self.config = config
        self.io = io
        self.transcript = Transcript()
        self.admin = config.administrator.name
        self.hsm: Hsm | None = None
        self.changed = False
        self.step_number = 0
        self.out_dir_override = out_dir

    def _step(self, title: str, what: str) -> None:
        self.step_number += 1
        self.io.say(f"\n=== Step {self.step_number}: {title} ===\n{what}")
        self.io.confirm(f"Administrator {self.admin}: go ahead with step {self.step_number}?")

    def _record(self, step: str, actor: str, data: dict[str, Any]) -> None:
        entry = self.transcript.append(step, actor, data)
        self.io.say(f"  recorded #{entry.seq}: {step}")

    def run(self) -> RetirementResult:
        try:
            return self._script()
        except BaseException as exc:
            if self.changed:
                reason = str(exc) if isinstance(exc, HsmSignerError) else f"{type(exc).__name__} (internal error)"
                self.transcript.append("retirement-aborted", self.admin, {"reason": reason})
                target = next_free_dir(self.out_dir, ".aborted")
                write_new_files(target, {TRANSCRIPT_FILE: self.transcript.to_bytes()})
                self.io.say(f"\nRETIREMENT ABORTED after keys were touched: {reason}\nTranscript so far: {target}")
            raise
        finally:
            if self.hsm is not None:
                self.hsm.close()

    def _script(self) -> RetirementResult:
        cfg = self.config
        if not self.io.interactive and not cfg.rehearsal:
            raise ConfigError("--non-interactive is only for rehearsals (retirement.rehearsal = true)")
        report = verify_bundle_dir(cfg.bundle)
        original = KeyBundle.from_json((cfg.bundle / KEYS_FILE).read_bytes())
        # The sealing key lives on the tally trustees' token, not this one: it is never retired here.
        on_this_token = [k for k in original.keys if not k.is_sealing_key]
        labels = cfg.labels or tuple(k.label for k in on_this_token)
        by_label = {k.label: k for k in on_this_token}
        unknown = [label for label in labels if label not in by_label]
        if unknown:
            raise ConfigError(f"{', '.join(map(repr, unknown))} {'is not a key' if len(unknown) == 1 else 'are not keys'} "
                              f"of ceremony {original.ceremony_id}", "retirement.labels")
        keys = [by_label[label] for label in labels]
        if not any(k.is_signing_key for k in keys):
            raise ConfigError("retire at least one signing key (checkpoint or tally) with the code-hmac key: its "
                              "signature is the proof that the retirer held the keys", "retirement.labels")
        self.retirement_id = cfg.retirement_id or next_free_dir(cfg.bundle, "-retire").name
        self.out_dir = (self.out_dir_override or cfg.out_dir or cfg.bundle.parent / self.retirement_id).resolve()
        refuse_existing(self.out_dir, "output directory", "choose another retirement id or --out")

        self.io.say(f"hsm-signer key retirement {self.retirement_id} of ceremony {original.ceremony_id}")
        self._step("Open the retirement", f"The verified bundle of ceremony {original.ceremony_id} is recorded.")
        bundle_transcript = (cfg.bundle / TRANSCRIPT_FILE).read_bytes()
        self._record("retirement-opened", self.admin, {
            "retirement_id": self.retirement_id, "ceremony_id": original.ceremony_id, "reason": cfg.reason,
            "rehearsal": cfg.rehearsal, "interactive": self.io.interactive, "labels": list(labels),
            "tool": f"{TOOL} {__version__}", "config": cfg.record(),
            "original": {"keys_json_sha256": hashlib.sha256((cfg.bundle / KEYS_FILE).read_bytes()).hexdigest(),
                         "transcript_head": transcript_head(bundle_transcript), "verified": len(report.checks)},
        })
        self._step("Roll call", "Every official confirms they are present.")
        present = []
        if self.io.interactive:
            for official in cfg.officials:
                self.io.acknowledge(official.name, f"{official.name} ({', '.join(official.roles)}): are you present?")
                present.append(official.name)
        self._record("roll-call", self.admin, {"present": present, "mode": "acknowledged by each official"
                                               if self.io.interactive else "non-interactive rehearsal: nobody was asked"})
        self._record("environment", TOOL, {"hsm_signer": __version__, "python": platform.python_version(),
                                           "platform": platform.platform(), "pkcs11_module": cfg.module})
        self._step("Activate the token", "The share holders rebuild the PIN; the token is opened.")
        if cfg.softhsm_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(cfg.softhsm_conf)
        self.hsm = Hsm(cfg.module, token_label=cfg.token_label, pin_source=pin_source(cfg.pin)).open()
        self._record("activation", self.admin, {"pin_source": cfg.pin.record(), "token": self.hsm.token_info()})

        self._step("Match the keys", "Each key on the token must be the published key; nothing is destroyed yet.")
        signers: list[tuple[KeyEntry, Signer]] = []
        for key in keys:
            signer = self._match(key)
            if signer is not None:
                signers.append((key, signer))

        self._step("Authorise destruction", f"Witnesses confirm that {', '.join(labels)} are to be destroyed.")
        acknowledged = []
        if self.io.interactive:
            for witness in cfg.witnesses:
                self.io.acknowledge(witness.name, f"{witness.name}: destroy {', '.join(labels)}?")
                acknowledged.append(witness.name)
        self._record("destruction-authorised", self.admin, {"labels": list(labels), "witnesses": acknowledged,
                                                            "mode": "acknowledged by each witness" if self.io.interactive
                                                            else "non-interactive rehearsal: witnesses were not asked"})
        signed_entries = len(self.transcript.entries)
        signatures = sign_head(self.retirement_id, signed_entries, self.transcript.head, signers)
        self.io.say(f"  transcript head {self.transcript.head} signed by the keys being retired")

        self._step("Destroy the keys", "Every object of each label is destroyed in the HSM.")
        self.changed = True
        for key in keys:
            count = destroy_key(self.hsm, key.label)
            still = self.hsm.key_exists(key.label)
            self._record("key-destroyed", self.admin, {"label": key.label, "objects_destroyed": count,
                                                       "still_present": still})
            if still or count < 1:
                raise HsmConfigError(f"key {key.label!r} was not destroyed ({count} objects, still present: {still})")
        self._record("retirement-closed", self.admin, {"retired": list(labels)})

        head = self.transcript.head
        write_new_files(self.out_dir, {
            RETIRED_FILE: retired_json(self.retirement_id, original.ceremony_id, keys),
            TRANSCRIPT_FILE: self.transcript.to_bytes(),
            SIGNATURES_FILE: signatures,
            SUMMARY_FILE: retirement_summary(self.transcript.entries, head, signed_entries).encode("utf-8"),
        })
        self.io.say(f"\nRetirement {self.retirement_id} complete. Bundle: {self.out_dir}\n"
                    f"Check it with: hsm-signer ceremony verify {self.out_dir}")
        return RetirementResult(self.retirement_id, self.out_dir, tuple(keys), head)

    def _match(self, key: KeyEntry) -> Signer | None:
        hsm = self.hsm
        assert hsm is not None
        signer: Signer | None = None
        if key.is_signing_key:
            signer = hsm.signer(key.label)
            if fingerprint(signer.public_key_der) != key.fingerprint:
                raise HsmConfigError(
                    f"the key labelled {key.label!r} on token {self.config.token_label!r} is not the published "
                    f"{key.purpose} key (public key fingerprints differ); nothing was destroyed")
        attributes = key_attributes(hsm, key.label)
        if attributes.get("id") != key.id:
            raise HsmConfigError(f"the key labelled {key.label!r} on the token has id {attributes.get('id')}, "
                                 f"the published key has id {key.id}; nothing was destroyed")
        problems = evidence.attribute_problems(attributes)
        self._record("key-found", self.admin, {"label": key.label, "key": key.to_dict(), "attributes": attributes,
                                               "matches_bundle": True})
        if problems:
            raise HsmConfigError(f"key {key.label!r} no longer has the ceremony's attributes: {'; '.join(problems)}")
        return signer
