"""The retirement configuration: which keys of which ceremony bundle to destroy, why, and who watches.

Like the ceremony config it is one strict TOML file (unknown keys rejected, errors name
the field path) with ``overrides`` for code::

    [retirement]
    bundle = "keys/election-2025"     # the ceremony bundle whose keys are retired
    labels = ["election-2025-checkpoint", "election-2025-tally", "election-2025-code-hmac"]
    reason = "the 2025 election record is published; the keys are no longer needed"
    # id = "election-2025-retire-1"   # default <ceremony id>-retire-<first free n>
    # rehearsal = false

    [hsm]
    module = "/usr/lib/vendor/libpkcs11.so"
    token_label = "election-2025"
    [hsm.pin]
    source = "shares"                 # m share holders type their shares (or share_files)

    [[officials]]                     # one administrator, at least one witness
    name = "..."
    roles = ["administrator"]

    # [output]
    # dir = "keys/election-2025-retire-1"   # default: next to the ceremony bundle

This module reads configuration only; it must never touch the HSM or hold a PIN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from hsm_signer.config import PinSpec, read_pin_spec
from hsm_signer.errors import ConfigError
from hsm_signer.strict import Table, load_toml, resolve_path

from .config import ADMINISTRATOR, ID_RE, LABEL_RE, WITNESS, Official, Roster, apply_overrides, read_official, resolve_module


@dataclass(frozen=True)
class RetireConfig(Roster):
    bundle: Path
    labels: tuple[str, ...]
    reason: str
    retirement_id: str | None
    rehearsal: bool
    module: str
    token_label: str
    pin: PinSpec
    officials: tuple[Official, ...]
    out_dir: Path | None = None
    softhsm_conf: Path | None = None
    source: Path | None = None
    source_sha256: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "file": str(self.source) if self.source else None, "file_sha256": self.source_sha256,
            "overrides": {k: v if isinstance(v, (str, int, bool)) else str(v) for k, v in sorted(self.overrides.items())},
            "bundle": self.bundle.name, "labels": list(self.labels), "reason": self.reason,
            "rehearsal": self.rehearsal, "module": self.module, "token_label": self.token_label,
            "pin": self.pin.record(),
            "officials": [{"name": o.name, "roles": list(o.roles)} for o in self.officials],
        }


def load_retire_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *,
                       cwd: Path | None = None) -> RetireConfig:
    path = Path(path)
    data = load_toml(path, "retirement configuration")
    overrides = dict(overrides or {})
    apply_overrides(data, overrides)
    return parse_retire_config(data, cwd=cwd, source=path.resolve(),
                               source_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), overrides=overrides)


def parse_retire_config(data: dict[str, Any], *, cwd: Path | None = None, source: Path | None = None,
                        source_sha256: str | None = None, overrides: Mapping[str, Any] | None = None) -> RetireConfig:
    base = (cwd or Path.cwd()).resolve()
    root = Table(data, "", "the settings in ceremony/CEREMONY.md")
    ret = root.table("retirement")
    assert ret is not None
    bundle = resolve_path(base, ret.str("bundle"))
    labels = ret.list("labels", [])
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
            raise ConfigError(f"{label!r} is not a key label", f"retirement.labels[{i}]")
    if len(set(labels)) != len(labels):
        raise ConfigError("names a label twice", "retirement.labels")
    reason = ret.str("reason")
    retirement_id = ret.str("id", None)
    if retirement_id is not None and not ID_RE.fullmatch(retirement_id):
        raise ConfigError(f"{retirement_id!r} is not a valid id; use lowercase letters, digits, '.', '_', '-'",
                          "retirement.id")
    rehearsal = ret.bool("rehearsal", False)
    ret.done()

    hsm = root.table("hsm")
    assert hsm is not None
    module = resolve_module(hsm.str("module"))
    token_label = hsm.str("token_label")
    conf = hsm.str("softhsm_conf", None)
    pin_table = hsm.table("pin")
    assert pin_table is not None
    pin = read_pin_spec(pin_table, base)
    hsm.done()
    if conf is not None and not rehearsal:
        raise ConfigError("SoftHSM is for rehearsals only; remove it or set retirement.rehearsal = true",
                          "hsm.softhsm_conf")

    officials = tuple(read_official(t) for t in root.tables("officials"))
    admins = [o for o in officials if ADMINISTRATOR in o.roles]
    if len(admins) != 1:
        raise ConfigError(f"exactly one official must have the role administrator, found {len(admins)}", "officials")
    if WITNESS in admins[0].roles:
        raise ConfigError("the administrator cannot also be a witness", "officials")
    if not any(WITNESS in o.roles for o in officials):
        raise ConfigError("no witness; give at least one official the role witness", "officials")

    out = root.table("output", {})
    assert out is not None
    out_dir = out.str("dir", None)
    out.done()
    root.done()
    return RetireConfig(
        bundle=bundle, labels=tuple(labels), reason=reason, retirement_id=retirement_id, rehearsal=rehearsal,
        module=module, token_label=token_label, pin=pin, officials=officials,
        out_dir=resolve_path(base, out_dir) if out_dir else None,
        softhsm_conf=resolve_path(base, conf) if conf else None,
        source=source, source_sha256=source_sha256, overrides=dict(overrides or {}),
    )
