"""Throwaway service directories on a SoftHSM token, for tests and benchmarks.

What a key ceremony produces, minus the ceremony: checkpoint and tally signing keys and
the voting-code HMAC key generated on the token, their key bundle, the user PIN in a file
and a ``config.toml`` that points at all of it. Never for an election: the PIN sits in a
plain file and nobody witnessed the keys (the demo runs the real ceremony instead).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from .. import codes as codes_mod
from .. import config as config_mod
from ..bundle import KeyBundle, KeyEntry
from ..election import OPEN, Election
from ..hsm import FixedPin, Hsm
from ..hsm.manage import generate_mac_key, generate_signing_key
from ..softhsm import SoftHsmToken

TEST_ORIGIN_PREFIX = "test.hsm-signer.invalid"
"""The log origin prefix of throw-away services (``.invalid``: a name no real deployment has)."""


def write_service_dir(token: SoftHsmToken, directory: Path, *, ceremony_id: str, tally_algorithm: str = "ecdsa-p256",
                      module: str | None = None, batch_size: int = 1000, max_wait_ms: int = 20,
                      header: str = "") -> Path:
    """Generate the keys on ``token`` and write the bundle, PIN file and config; the config's path.

    ``module``: reach the token through another PKCS#11 module (the p11-kit client, for a
    network HSM a test can kill)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    with Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)) as hsm:
        for number, (purpose, algorithm) in enumerate((("checkpoint", "ecdsa-p256"), ("tally", tally_algorithm)), 1):
            label = f"{token.label}-{purpose}"
            signer = generate_signing_key(hsm, label, bytes([number]), algorithm)
            entries.append(KeyEntry.for_signing_key(purpose, label, f"{number:02x}", signer.public_key_der,
                                                    f"{ceremony_id}/{purpose}"))
        generate_mac_key(hsm, f"{token.label}-codes", b"\x03")
        entries.append(KeyEntry.for_mac_key(f"{token.label}-codes", "03"))
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    KeyBundle(ceremony_id=ceremony_id, created=created, keys=tuple(entries)).write(directory / "keys")
    pin_file = directory / "user-pin.txt"
    pin_file.write_text(token.user_pin)
    os.chmod(pin_file, 0o600)
    config_path = directory / "config.toml"
    config_path.write_text(config_mod.config_text(
        header=header, module=module or token.module, token_label=token.label, softhsm_conf=str(token.conf),
        pin={"source": "file", "path": "user-pin.txt"}, bundle="keys", batch_size=batch_size,
        max_wait_ms=max_wait_ms, origin_prefix=TEST_ORIGIN_PREFIX,
        allow_clear_ballots=True), encoding="utf-8")  # the kit's bundle has no sealing key
    return config_path


@dataclass(frozen=True)
class Kit:
    """A throwaway service directory: its config file, the directory, the token its keys are on."""

    config_path: Path
    directory: Path
    token: SoftHsmToken

    def load(self) -> config_mod.Config:
        return config_mod.load(self.config_path)


def provision(token: SoftHsmToken, directory: Path, *, ceremony_id: str, tally_algorithm: str = "ecdsa-p256",
              module: str | None = None, batch_size: int = 1000, max_wait_ms: int = 20, header: str = "") -> Kit:
    """A service directory for ``token`` (see :func:`write_service_dir`), as a :class:`Kit`."""
    config_path = write_service_dir(token, directory, ceremony_id=ceremony_id, tally_algorithm=tally_algorithm,
                                    module=module, batch_size=batch_size, max_wait_ms=max_wait_ms, header=header)
    return Kit(config_path=config_path, directory=Path(directory), token=token)


def open_election_on(storage, code_mac, definition: dict, count: int,
                     origin_prefix: str | None = None) -> list[tuple[str, bytes]]:
    """Create and open an election with ``count`` codes hashed by ``code_mac``; the (code, hash) pairs.

    Its log is ``<origin_prefix>/<id>``; without a prefix (and without an origin in the
    definition), the ``hsm-signer/<id>`` of elections defined before origins were configured.
    """
    election = Election.from_dict(definition)
    if origin_prefix is not None:
        election = election.with_origin(origin_prefix)
    storage.create_election(election)
    issued = list(codes_mod.issue(code_mac, election.id, count))
    storage.add_codes(election.id, [digest for _, digest in issued])
    storage.set_state(election.id, OPEN)
    return issued


def open_election(service, definition: dict, count: int) -> list[str]:
    """Create and open an election with ``count`` codes; return the codes (display form)."""
    issued = open_election_on(service.storage, service.ballots.code_mac, definition, count, service.config.origin_prefix)
    return [codes_mod.display(code) for code, _ in issued]
