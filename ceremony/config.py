"""The ceremony configuration: one reviewable TOML file, parsed strictly into frozen objects.

Every error names the field path and the fix (``officials[2].roles: 'witnes' is not one
of administrator, share-holder, witness``). Unknown keys are rejected so a typo can never
silently change a ceremony. Code (the demo, tests) loads a config with ``overrides``: a
mapping of dotted paths to values (``{"hsm.token_label": "demo"}``) applied to the file's
data *before* validation, so overridden values are checked like written ones.

Relative paths in the file, and the default output directories ``keys/<ceremony-id>`` and
``rehearsal-shares/<ceremony-id>``, are relative to the directory the ceremony is run in.

This module reads configuration only: it must never touch the HSM, and a config never
holds a PIN (PIN sources name a prompt, a variable, a file or share files).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hsm_signer import softhsm
from hsm_signer.bundle import CHECKPOINT, CODE_HMAC, ECDH_P256, HMAC_SHA256, SIGNING_AND_MAC_PURPOSES, TALLY
from hsm_signer.errors import ConfigError
from hsm_signer.config import PinSpec, read_pin_spec
from hsm_signer.hsm.shares import MAX_SHARES
from hsm_signer.signer import ALGORITHMS, ECDSA_P256
from hsm_signer.strict import Table, load_toml, resolve_path

ADMINISTRATOR = "administrator"
SHARE_HOLDER = "share-holder"
WITNESS = "witness"
TALLY_TRUSTEE = "tally-trustee"
ROLES = (ADMINISTRATOR, SHARE_HOLDER, WITNESS, TALLY_TRUSTEE)

#: ``module = "softhsm"`` means the installed SoftHSM2 library, wherever the OS put it.
SOFTHSM_MODULE = "softhsm"

ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EXAMPLES = Path(__file__).parent / "examples"
REHEARSAL_EXAMPLE = EXAMPLES / "rehearsal.toml"


@dataclass(frozen=True)
class Official:
    name: str
    roles: tuple[str, ...]

    @property
    def slug(self) -> str:
        """The name as a file-name part: ``Bob O'Brien`` -> ``bob-o-brien``."""
        return slug_of(self.name)


class Roster:
    """The officials by role, for a configuration with an ``officials`` field."""

    officials: tuple[Official, ...]

    @property
    def administrator(self) -> Official:
        return next(o for o in self.officials if ADMINISTRATOR in o.roles)

    @property
    def share_holders(self) -> tuple[Official, ...]:
        return tuple(o for o in self.officials if SHARE_HOLDER in o.roles)

    @property
    def witnesses(self) -> tuple[Official, ...]:
        return tuple(o for o in self.officials if WITNESS in o.roles)

    @property
    def tally_trustees(self) -> tuple[Official, ...]:
        return tuple(o for o in self.officials if TALLY_TRUSTEE in o.roles)


@dataclass(frozen=True)
class KeySpec:
    purpose: str
    label: str
    algorithm: str

    @property
    def is_signing_key(self) -> bool:
        return self.purpose != CODE_HMAC


@dataclass(frozen=True)
class HsmSpec:
    module: str
    token_label: str
    initialise: bool = False
    softhsm_conf: Path | None = None
    initial_pin: PinSpec | None = None


@dataclass(frozen=True)
class SealingSpec:
    """The sealing key: on its own token, whose PIN the tally trustees share m-of-n."""

    token_label: str
    label: str
    threshold: int
    initialise: bool = False
    initial_pin: PinSpec | None = None

    def record(self) -> dict[str, Any]:
        return {"token_label": self.token_label, "label": self.label, "algorithm": ECDH_P256,
                "threshold": self.threshold, "initialise": self.initialise,
                "initial_pin": self.initial_pin.record() if self.initial_pin else None}


@dataclass(frozen=True)
class CeremonyConfig(Roster):
    """A validated ceremony configuration."""

    ceremony_id: str
    description: str
    rehearsal: bool
    hsm: HsmSpec
    threshold: int
    officials: tuple[Official, ...]
    keys: tuple[KeySpec, ...]
    out_dir: Path
    shares_dir: Path
    sealing: SealingSpec | None = None
    source: Path | None = None
    source_sha256: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


    def key(self, purpose: str) -> KeySpec:
        return next(k for k in self.keys if k.purpose == purpose)

    def record(self) -> dict[str, Any]:
        """The configuration as the transcript records it (JSON-safe, no secret in it)."""
        return {
            "file": str(self.source) if self.source else None,
            "file_sha256": self.source_sha256,
            "overrides": {k: _json_safe(v) for k, v in sorted(self.overrides.items())},
            "ceremony_id": self.ceremony_id,
            "description": self.description,
            "rehearsal": self.rehearsal,
            "hsm": {
                "module": self.hsm.module,
                "token_label": self.hsm.token_label,
                "initialise": self.hsm.initialise,
                "initial_pin": self.hsm.initial_pin.record() if self.hsm.initial_pin else None,
            },
            "threshold": self.threshold,
            "share_holders": len(self.share_holders),
            "officials": [{"name": o.name, "roles": list(o.roles)} for o in self.officials],
            "keys": [{"purpose": k.purpose, "label": k.label, "algorithm": k.algorithm} for k in self.keys],
            **({"sealing": {**self.sealing.record(), "tally_trustees": len(self.tally_trustees)}}
               if self.sealing else {}),
        }


def slug_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _json_safe(value: Any) -> Any:
    return value if isinstance(value, (str, int, bool)) or value is None else str(value)


# --- loading --------------------------------------------------------------------------

def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None, *, cwd: Path | None = None) -> CeremonyConfig:
    """Read, override and validate the ceremony config at ``path``."""
    path = Path(path)
    data = load_toml(path, "ceremony configuration")
    raw = path.read_bytes()
    overrides = dict(overrides or {})
    apply_overrides(data, overrides)
    return parse_config(data, cwd=cwd, source=path.resolve(),
                        source_sha256=hashlib.sha256(raw).hexdigest(), overrides=overrides)


def load_rehearsal(overrides: Mapping[str, Any] | None = None, *, cwd: Path | None = None) -> CeremonyConfig:
    """The committed rehearsal config (used by the tests and ``hsm-signer demo``), with overrides.

    Typical overrides: ``hsm.token_label``, ``hsm.module``, ``hsm.softhsm_conf``,
    ``output.dir``, ``output.shares_dir``, ``ceremony.id``. A new ``hsm.token_label``
    without a ``sealing.token_label`` names the sealing token ``sealing-<hsm.token_label>``,
    so two rehearsals on one SoftHSM directory never meet on the sealing token (and the
    signing token's label is not a prefix of it: OpenSC's pkcs11-tool matches prefixes).
    """
    overrides = dict(overrides or {})
    if "hsm.token_label" in overrides and "sealing.token_label" not in overrides:
        overrides["sealing.token_label"] = f"sealing-{overrides['hsm.token_label']}"[:32]
    return load_config(REHEARSAL_EXAMPLE, overrides, cwd=cwd)


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set each dotted path of ``overrides`` in ``data`` (creating tables as needed)."""
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"override {dotted!r} is not a dotted path such as 'hsm.token_label'")
        table = data
        for depth, part in enumerate(parts[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {dotted!r}: {'.'.join(parts[:depth + 1])} is not a table")
            table = nxt
        table[parts[-1]] = str(value) if isinstance(value, Path) else value


def parse_config(data: dict[str, Any], *, cwd: Path | None = None, source: Path | None = None,
                 source_sha256: str | None = None, overrides: Mapping[str, Any] | None = None) -> CeremonyConfig:
    """Validate parsed TOML ``data`` into a :class:`CeremonyConfig`."""
    base = (cwd or Path.cwd()).resolve()
    root = Table(data, "", "the settings in ceremony/CEREMONY.md")

    cer = root.table("ceremony")
    assert cer is not None
    ceremony_id = cer.str("id")
    if not ID_RE.fullmatch(ceremony_id):
        raise ConfigError(
            f"{ceremony_id!r} is not a valid ceremony id; use 1-64 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (e.g. \"election-2025-keys\")", "ceremony.id")
    description = cer.str("description", "")
    rehearsal = cer.bool("rehearsal", False)
    cer.done()

    hsm = _read_hsm(root.table("hsm"), rehearsal, base)

    shares = root.table("shares")
    assert shares is not None
    threshold = shares.int("threshold", low=2, high=MAX_SHARES)
    shares.done()

    officials = tuple(read_official(t) for t in root.tables("officials"))
    _check_officials(officials, threshold)
    sealing_table = root.table("sealing", None)
    sealing = _read_sealing(sealing_table, rehearsal, hsm, base) if sealing_table is not None else None
    _check_trustees(officials, sealing)

    keys = tuple(_read_key(t) for t in root.tables("keys"))
    _check_keys(keys)

    out = root.table("output", {})
    assert out is not None
    out_dir = resolve_path(base, out.str("dir", f"keys/{ceremony_id}"))
    shares_dir = resolve_path(base, out.str("shares_dir", f"rehearsal-shares/{ceremony_id}"))
    out.done()
    root.done()
    return CeremonyConfig(
        ceremony_id=ceremony_id, description=description, rehearsal=rehearsal, hsm=hsm,
        threshold=threshold, officials=officials, keys=keys, out_dir=out_dir, shares_dir=shares_dir,
        sealing=sealing, source=source, source_sha256=source_sha256, overrides=dict(overrides or {}),
    )


def resolve_module(module: str, path: str = "hsm.module", *,
                   find_softhsm: Callable[[], str | None] = softhsm.find_module) -> str:
    """The PKCS#11 library path (``"softhsm"`` means the installed SoftHSM2, as ``find_softhsm`` finds it)."""
    if module != SOFTHSM_MODULE:
        return module
    found = find_softhsm()
    if found is None:
        raise ConfigError(
            "'softhsm' was asked for but SoftHSM2 is not installed; install it "
            "(apt-get install softhsm2) or give the path of your HSM's PKCS#11 library", path)
    return found


def _read_hsm(table: Table | None, rehearsal: bool, base: Path) -> HsmSpec:
    assert table is not None
    module = resolve_module(table.str("module"))
    token_label = table.str("token_label")
    initialise = table.bool("initialise", False)
    conf = table.str("softhsm_conf", None)
    pin_table = table.table("initial_pin", None)
    initial_pin = read_pin_spec(pin_table, base) if pin_table is not None else None
    table.done()
    if initialise and not rehearsal:
        raise ConfigError(
            "initialise = true is only for SoftHSM rehearsals (set ceremony.rehearsal = true); "
            "initialise a real HSM with its vendor's tool, then give hsm.initial_pin", "hsm.initialise")
    if initialise and initial_pin is not None:
        raise ConfigError(
            "not used when initialise = true (the ceremony sets the PIN of the new token); remove it",
            "hsm.initial_pin")
    if not initialise and initial_pin is None:
        raise ConfigError(
            "missing; say how to get the token's current user PIN, e.g. [hsm.initial_pin] source = \"prompt\" "
            "(or set initialise = true for a SoftHSM rehearsal)", "hsm.initial_pin")
    if conf is not None and not rehearsal:
        raise ConfigError("SoftHSM is for rehearsals only; remove it or set ceremony.rehearsal = true",
                          "hsm.softhsm_conf")
    return HsmSpec(module=module, token_label=token_label, initialise=initialise,
                   softhsm_conf=resolve_path(base, conf) if conf else None, initial_pin=initial_pin)


def _read_sealing(table: Table, rehearsal: bool, hsm: HsmSpec, base: Path) -> SealingSpec:
    token_label = table.str("token_label")
    if token_label == hsm.token_label:
        raise ConfigError(
            f"is the signing keys' token {token_label!r}; the sealing key lives on a token of its own "
            "(another partition), whose PIN only the tally trustees hold", "sealing.token_label")
    label = table.str("label")
    if not LABEL_RE.fullmatch(label):
        raise ConfigError(f"{label!r} is not a valid key label; use 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit", "sealing.label")
    threshold = table.int("threshold", low=2, high=MAX_SHARES)
    initialise = table.bool("initialise", False)
    pin_table = table.table("initial_pin", None)
    initial_pin = read_pin_spec(pin_table, base) if pin_table is not None else None
    table.done()
    if initialise and not rehearsal:
        raise ConfigError("initialise = true is only for SoftHSM rehearsals; initialise the sealing token with "
                          "the vendor's tool, then give sealing.initial_pin", "sealing.initialise")
    if initialise and initial_pin is not None:
        raise ConfigError("not used when initialise = true; remove it", "sealing.initial_pin")
    if not initialise and initial_pin is None:
        raise ConfigError("missing; say how to get the sealing token's current user PIN, e.g. "
                          "[sealing.initial_pin] source = \"prompt\"", "sealing.initial_pin")
    return SealingSpec(token_label=token_label, label=label, threshold=threshold,
                       initialise=initialise, initial_pin=initial_pin)


def _check_trustees(officials: tuple[Official, ...], sealing: SealingSpec | None) -> None:
    trustees = [i for i, o in enumerate(officials) if TALLY_TRUSTEE in o.roles]
    if sealing is None:
        if trustees:
            raise ConfigError("tally trustees are named but there is no [sealing] table; add one "
                              "(token_label, label, threshold) or remove the role", f"officials[{trustees[0]}].roles")
        return
    for i in trustees:
        roles = officials[i].roles
        if SHARE_HOLDER in roles or ADMINISTRATOR in roles:
            raise ConfigError(
                "a tally trustee cannot also be a share holder or the administrator: the people who can open "
                "the ballots must be distinct from those who activate the running service", f"officials[{i}].roles")
    if len(trustees) < 2:
        raise ConfigError(f"need at least 2 tally trustees, found {len(trustees)}; give officials the role "
                          "tally-trustee", "officials")
    if len(trustees) > MAX_SHARES:
        raise ConfigError(f"at most {MAX_SHARES} tally trustees (a SLIP-39 limit), found {len(trustees)}", "officials")
    if sealing.threshold > len(trustees):
        raise ConfigError(f"threshold {sealing.threshold} is more than the {len(trustees)} tally trustees; lower it "
                          "or add trustees", "sealing.threshold")


def read_official(table: Table) -> Official:
    name = table.str("name")
    if not slug_of(name):
        raise ConfigError(f"{name!r} has no letter or digit; give the person's name", f"{table.path}.name")
    roles = table.list("roles")
    if not roles:
        raise ConfigError(f"give at least one role: {', '.join(ROLES)}", f"{table.path}.roles")
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise ConfigError(f"{role!r} is not one of {', '.join(ROLES)}", f"{table.path}.roles[{i}]")
    if len(set(roles)) != len(roles):
        raise ConfigError("lists a role twice", f"{table.path}.roles")
    table.done()
    return Official(name=name, roles=tuple(roles))


def _check_officials(officials: tuple[Official, ...], threshold: int) -> None:
    if not officials:
        raise ConfigError("no officials; add [[officials]] tables for the administrator, share holders and witnesses",
                          "officials")
    seen: dict[str, int] = {}
    for i, official in enumerate(officials):
        if official.slug in seen:
            raise ConfigError(
                f"{official.name!r} is too similar to officials[{seen[official.slug]}] "
                f"(both become {official.slug!r} in file names); names must be distinct",
                f"officials[{i}].name")
        seen[official.slug] = i
    admins = [i for i, o in enumerate(officials) if ADMINISTRATOR in o.roles]
    if len(admins) != 1:
        raise ConfigError(
            f"exactly one official must have the role administrator, found {len(admins)}", "officials")
    admin = officials[admins[0]]
    if WITNESS in admin.roles:
        raise ConfigError("the administrator cannot also be a witness; witnesses check the administrator",
                          f"officials[{admins[0]}].roles")
    if not any(WITNESS in o.roles for o in officials):
        raise ConfigError("no witness; give at least one official the role witness", "officials")
    holders = sum(SHARE_HOLDER in o.roles for o in officials)
    if holders < 2:
        raise ConfigError(f"need at least 2 share holders, found {holders}; give more officials the role share-holder",
                          "officials")
    if holders > MAX_SHARES:
        raise ConfigError(f"at most {MAX_SHARES} share holders (a SLIP-39 limit), found {holders}", "officials")
    if threshold > holders:
        raise ConfigError(
            f"threshold {threshold} is more than the {holders} share holders; lower it or add share holders",
            "shares.threshold")


def _read_key(table: Table) -> KeySpec:
    purpose = table.str("purpose", choices=SIGNING_AND_MAC_PURPOSES)
    label = table.str("label")
    if not LABEL_RE.fullmatch(label):
        raise ConfigError(
            f"{label!r} is not a valid key label; use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit", f"{table.path}.label")
    if purpose == CODE_HMAC:
        algorithm = table.str("algorithm", HMAC_SHA256, choices=(HMAC_SHA256,))
    else:
        algorithm = table.str("algorithm", ECDSA_P256, choices=ALGORITHMS)
    table.done()
    return KeySpec(purpose=purpose, label=label, algorithm=algorithm)


def _check_keys(keys: tuple[KeySpec, ...]) -> None:
    by_purpose: dict[str, int] = {}
    by_label: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key.purpose in by_purpose:
            raise ConfigError(f"a {key.purpose} key is already defined in keys[{by_purpose[key.purpose]}]; "
                              "a ceremony makes one key per purpose", f"keys[{i}].purpose")
        if key.label in by_label:
            raise ConfigError(f"label {key.label!r} is already used by keys[{by_label[key.label]}]; labels must be unique",
                              f"keys[{i}].label")
        by_purpose[key.purpose] = i
        by_label[key.label] = i
    missing = [p for p in (CHECKPOINT, TALLY, CODE_HMAC) if p not in by_purpose]
    if missing:
        raise ConfigError(f"no {' or '.join(missing)} key; add a [[keys]] table with purpose = \"{missing[0]}\"", "keys")
