"""The service configuration: one TOML file, validated once at start, passed down as objects.

Found from ``--config FILE`` or the ``HSM_SIGNER_CONFIG`` environment variable. Relative
paths in the file are relative to the file's own directory, so a state directory can be
moved as a whole. Example (the demo writes one like it)::

    [hsm]
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token_label = "hsm-signer-demo"
    softhsm_conf = "softhsm2.conf"       # optional: exported as SOFTHSM2_CONF
    [hsm.pin]
    source = "file"                       # env | file | prompt | shares
    path = "user-pin.txt"

    [keys]
    bundle = "keys/demo-ceremony"         # the ceremony's published key bundle

    [storage]
    url = "sqlite:///ballots.sqlite3"     # or postgresql://user@host/db

    [log]
    origin_prefix = "vote.example.org"    # logs are named <origin_prefix>/<election id>: globally unique

    [sequencer]
    batch_size = 1000
    max_wait_ms = 20
    state_file = "sequencer-state.json"   # the signer's own record of what it signed

    [server]
    host = "127.0.0.1"
    port = 8080

    [voting]
    resubmit_window_minutes = 30          # the same ballot sent again gets its receipt only this long
    allow_clear_ballots = false           # true only for a key bundle without a sealing key (tests, old elections)

    [tally.sealing]                       # read ONLY by `hsm-signer tally`: never by serve or the sequencer
    token_label = "sealing-election-2026" # the sealing token (its own token, not [hsm]'s)
    workers = 2                           # processes opening ballots, each with its own PKCS#11 session
    [tally.sealing.pin]
    source = "shares"                     # m of the tally trustees' shares ("prompt": typed)
    share_files = ["/media/trustee1/share.txt", "/media/trustee2/share.txt"]

A configuration whose ``[tally.sealing]`` would let the service reach the trustees' PIN (the
same token as ``[hsm]``, a share file or PIN source in common) is refused by every command.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, FormatError
from .log.checkpoint import LEGACY_ORIGIN_PREFIX, check_origin_prefix
from .strict import Table, load_toml, resolve_path

ENV_VAR = "HSM_SIGNER_CONFIG"

#: Where an HSM user PIN can come from (:mod:`hsm_signer.hsm.pins` builds each source).
PIN_SOURCES = ("env", "file", "prompt", "shares")


@dataclass(frozen=True)
class PinSpec:
    """Where a PIN will come from, as a configuration file says it (never the PIN itself).

    Shared by the service configuration and the ceremony configuration; the HSM layer turns
    it into a PIN source (:func:`hsm_signer.hsm.pins.pin_source`).
    """

    source: str = "env"
    variable: str = "HSM_SIGNER_PIN"
    path: Path | None = None
    share_files: tuple[Path, ...] = ()

    def record(self) -> dict[str, Any]:
        """What a transcript or log may say about this source (no secret in it)."""
        out: dict[str, Any] = {"source": self.source}
        if self.source == "env":
            out["variable"] = self.variable
        if self.source == "file":
            out["path"] = str(self.path)
        if self.source == "shares":
            out["share_files"] = len(self.share_files)
        return out


@dataclass(frozen=True)
class HsmSettings:
    module: str
    token_label: str | None = None
    token_serial: str | None = None
    pin: PinSpec = PinSpec()
    softhsm_conf: Path | None = None
    retry_attempts: int = 3
    down_retry_interval: float = 1.0


@dataclass(frozen=True)
class SequencerSettings:
    batch_size: int = 1000
    max_wait_ms: int = 20
    state_file: Path = Path("sequencer-state.json")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    behind_tls: bool = False
    secret_key_file: Path | None = None
    public_url: str | None = None  # where voters reach the service, e.g. https://vote.example.org

    @property
    def base_url(self) -> str:
        """The base of every link the service prints (receipt QR codes, verify links): the
        configured ``public_url``, else this host and port. Never the request's Host header."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.behind_tls else 'http'}://{host}:{self.port}"


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ConfigError(f"{value!r} is not a base URL; give scheme and host, e.g. \"https://vote.example.org\"",
                          "server.public_url")
    return value.rstrip("/")


@dataclass(frozen=True)
class VotingSettings:
    # After this, the link from a code to its ballot is destroyed: a resubmission is a conflict.
    resubmit_window_minutes: int = 30
    # Without a sealing key in the bundle, ballots could only be stored in clear (leaf v1):
    # refused unless this says so (test kits, an election begun before sealed ballots).
    allow_clear_ballots: bool = False


@dataclass(frozen=True)
class SealingSettings:
    """``[tally.sealing]``: how the tally reaches the sealing token. Never read by the service."""

    token_label: str
    pin: PinSpec
    module: str | None = None  # default: hsm.module
    workers: int = 0           # 0: one per CPU

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Config:
    path: Path
    hsm: HsmSettings
    key_bundle: Path
    storage_url: str
    sequencer: SequencerSettings = SequencerSettings()
    server: ServerSettings = ServerSettings()
    voting: VotingSettings = VotingSettings()
    origin_prefix: str | None = None  # [log] origin_prefix: new elections' logs are <prefix>/<election id>
    sealing: SealingSettings | None = None  # [tally.sealing]: only the tally reads it

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def _path(base: Path, value: str | None) -> Path | None:
    return None if value is None else resolve_path(base, value)


def read_pin_spec(table: Table, base: Path, *, default: str | None = None) -> PinSpec:
    """A ``[... .pin]`` table: ``source`` (env, file, prompt, shares) and what that source needs."""
    source = table.str("source", default, choices=PIN_SOURCES) if default else table.str("source", choices=PIN_SOURCES)
    spec = PinSpec(
        source=source,
        variable=table.str("variable", "HSM_SIGNER_PIN"),
        path=_path(base, table.str("path", None)),
        share_files=tuple(resolve_path(base, str(p)) for p in table.list("share_files", [])),
    )
    table.done()
    if source == "file" and spec.path is None:
        raise ConfigError("source is 'file' but no path is given; add path = \"...\"", table.path)
    if source != "shares" and spec.share_files:
        raise ConfigError("share_files is only used with source = \"shares\"", table.path)
    return spec


def _storage_url(value: str, base: Path) -> str:
    if value.startswith("sqlite:///"):
        db = Path(value[len("sqlite:///"):])
        return "sqlite:///" + str(db if db.is_absolute() else base / db)
    if value.startswith(("postgresql://", "postgres://")):
        return value
    raise ConfigError(f"{value!r} is not a sqlite:/// or postgresql:// URL", "storage.url")


def parse(data: dict, path: Path) -> Config:
    base = path.parent
    root = Table(data, "", "the settings in README.md (Configuration)")
    hsm = root.table("hsm")
    assert hsm is not None
    settings = HsmSettings(
        module=hsm.str("module"),
        token_label=hsm.str("token_label", None),
        token_serial=hsm.str("token_serial", None),
        pin=read_pin_spec(pin, base, default="env") if (pin := hsm.table("pin", None)) else PinSpec(),
        softhsm_conf=_path(base, hsm.str("softhsm_conf", None)),
        retry_attempts=hsm.int("retry_attempts", 3, low=1, high=10),
        down_retry_interval=hsm.number("down_retry_interval", 1.0, low=0.0),
    )
    if not (settings.token_label or settings.token_serial):
        raise ConfigError("set token_label or token_serial to choose the token", "hsm")
    hsm.done()
    keys = root.table("keys")
    assert keys is not None
    bundle = resolve_path(base, keys.str("bundle"))
    keys.done()
    storage = root.table("storage")
    assert storage is not None
    url = _storage_url(storage.str("url"), base)
    storage.done()
    seq = root.table("sequencer", {})
    assert seq is not None
    sequencer = SequencerSettings(
        batch_size=seq.int("batch_size", 1000, low=1, high=100_000),
        max_wait_ms=seq.int("max_wait_ms", 20, low=0, high=60_000),
        state_file=resolve_path(base, seq.str("state_file", "sequencer-state.json")),
    )
    seq.done()
    srv = root.table("server", {})
    assert srv is not None
    server = ServerSettings(
        host=srv.str("host", "127.0.0.1"),
        port=srv.int("port", 8080, low=0, high=65535),
        behind_tls=srv.bool("behind_tls", False),
        secret_key_file=_path(base, srv.str("secret_key_file", None)),
        public_url=_public_url(srv.str("public_url", None)),
    )
    if server.behind_tls and server.public_url and not server.public_url.startswith("https://"):
        raise ConfigError("behind TLS the public URL must start with https://", "server.public_url")
    srv.done()
    vote = root.table("voting", {})
    assert vote is not None
    voting = VotingSettings(resubmit_window_minutes=vote.int("resubmit_window_minutes", 30, low=0, high=24 * 60),
                            allow_clear_ballots=vote.bool("allow_clear_ballots", False))
    vote.done()
    log_table = root.table("log", {})
    assert log_table is not None
    origin_prefix = _origin_prefix(log_table.str("origin_prefix", None))
    log_table.done()
    tally = root.table("tally", {})
    assert tally is not None
    sealing = _sealing(tally.table("sealing", None), base, settings)
    tally.done()
    root.done()
    return Config(path=path, hsm=settings, key_bundle=bundle, storage_url=url,
                  sequencer=sequencer, server=server, voting=voting, origin_prefix=origin_prefix, sealing=sealing)


def _sealing(table: Table | None, base: Path, hsm: HsmSettings) -> SealingSettings | None:
    """``[tally.sealing]``, refused if it would put the trustees' PIN within the service's reach."""
    if table is None:
        return None
    pin_table = table.table("pin")
    assert pin_table is not None
    sealing = SealingSettings(
        token_label=table.str("token_label"),
        module=table.str("module", None),
        workers=table.int("workers", 0, low=0, high=64),
        pin=read_pin_spec(pin_table, base),
    )
    table.done()
    if sealing.pin.source not in ("shares", "prompt"):
        raise ConfigError("the sealing token's PIN comes only from the tally trustees: source = \"shares\" "
                          "(their share files) or \"prompt\" (typed)", "tally.sealing.pin.source")
    if sealing.token_label == hsm.token_label:
        raise ConfigError(f"is the service's own token {hsm.token_label!r}; the sealing key lives on a token of its "
                          "own, whose PIN the service never holds", "tally.sealing.token_label")
    shared = sorted(set(sealing.pin.share_files) & set(hsm.pin.share_files))
    if shared:
        raise ConfigError(f"{shared[0]} is also a share file of [hsm.pin]: the trustees' shares must never be "
                          "where the service reads its own PIN", "tally.sealing.pin.share_files")
    return sealing


def _origin_prefix(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        check_origin_prefix(value)
    except FormatError as exc:
        raise ConfigError(str(exc), "log.origin_prefix") from None
    if value == LEGACY_ORIGIN_PREFIX:
        raise ConfigError(f"{value!r} is the old default every deployment shared; use a name you control, "
                          "such as vote.example.org", "log.origin_prefix")
    return value


def load(path: str | Path | None = None) -> Config:
    """Load the config from ``path``, else ``$HSM_SIGNER_CONFIG``; say how to fix a missing one."""
    if path is None:
        path = os.environ.get(ENV_VAR)
    if not path:
        raise ConfigError(
            f"no configuration file: pass --config FILE or set {ENV_VAR} "
            "(`hsm-signer demo` writes one into its state directory)"
        )
    path = Path(path).resolve()
    return parse(load_toml(path), path)


def config_text(*, module: str, token_label: str, pin: dict[str, str | list[str]], bundle: str,
                softhsm_conf: str | None = None, storage_url: str = "sqlite:///ballots.sqlite3",
                batch_size: int = 1000, max_wait_ms: int = 20, server: dict[str, str | int] | None = None,
                origin_prefix: str | None = None, header: str = "", sealing: dict | None = None,
                allow_clear_ballots: bool = False) -> str:
    """A configuration file's text, for the programs that write one (the demo, test and
    benchmark kits): every value quoted the one way, in the tables :func:`parse` reads."""
    def value(item: str | int | list[str]) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, list):
            return "[" + ", ".join(json.dumps(entry) for entry in item) + "]"
        return str(item) if isinstance(item, int) else json.dumps(item)  # a JSON string is a TOML string

    def table(name: str, entries: dict) -> list[str]:
        return [f"[{name}]", *(f"{key} = {value(item)}" for key, item in entries.items() if item is not None)]

    lines = [f"# {line}" for line in header.splitlines()]
    lines += table("hsm", {"module": module, "token_label": token_label, "softhsm_conf": softhsm_conf})
    lines += table("hsm.pin", pin) + [""]
    lines += table("keys", {"bundle": bundle}) + [""]
    lines += table("storage", {"url": storage_url}) + [""]
    lines += table("sequencer", {"batch_size": batch_size, "max_wait_ms": max_wait_ms,
                                 "state_file": "sequencer-state.json"})
    if server:
        lines += [""] + table("server", server)
    if origin_prefix:
        lines += [""] + table("log", {"origin_prefix": origin_prefix})
    if allow_clear_ballots:
        lines += [""] + table("voting", {"allow_clear_ballots": True})
    if sealing:
        sealing = dict(sealing)
        pin_entries = sealing.pop("pin")
        lines += ["", "# Read only by `hsm-signer tally`: the tally trustees' shares open the sealing token."]
        lines += table("tally.sealing", sealing) + table("tally.sealing.pin", pin_entries)
    return "\n".join(lines) + "\n"
