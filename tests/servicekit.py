"""Building a whole service for tests: a fresh SoftHSM token with keys, a bundle, a config.

This is the short way round the key ceremony (which has its own tests): keys are made
with the same HSM layer calls, and the bundle with the same dataclasses, but without
the transcript and share-splitting steps.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from hsm_signer import codes as codes_mod
from hsm_signer import config as config_mod
from hsm_signer.bundle import KeyBundle, KeyEntry
from hsm_signer.election import OPEN, Election
from hsm_signer.hsm import FixedPin, Hsm
from hsm_signer.hsm.manage import generate_mac_key, generate_signing_key

DEMO_ELECTION = {
    "id": "test-election",
    "title": "Test election",
    "contests": [
        {"id": "leader", "title": "Leader", "options": [
            {"id": "alice", "title": "Alice"}, {"id": "bob", "title": "Bob"}, {"id": "carol", "title": "Carol"}]},
        {"id": "board", "title": "Board", "max_choices": 2, "options": [
            {"id": "dan", "title": "Dan"}, {"id": "erin", "title": "Erin"}, {"id": "frank", "title": "Frank"}]},
    ],
}


@dataclass
class Kit:
    config_path: Path
    directory: Path
    token: object

    def load(self) -> config_mod.Config:
        return config_mod.load(self.config_path)


def provision(tokens, directory: Path, *, tally_algorithm: str = "ecdsa-p256", batch_size: int = 1000,
              module: str | None = None) -> Kit:
    """A token with checkpoint, tally and code keys; keys.json; a PIN file; config.toml.

    ``module`` makes the service reach the token through another PKCS#11 module (the
    p11-kit client, for a network HSM the test can kill)."""
    directory.mkdir(parents=True, exist_ok=True)
    token = tokens.new("svc")
    prefix = token.label
    entries = []
    with Hsm(token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)) as hsm:
        for number, (purpose, algorithm) in enumerate((("checkpoint", "ecdsa-p256"), ("tally", tally_algorithm)), 1):
            label = f"{prefix}-{purpose}"
            signer = generate_signing_key(hsm, label, bytes([number]), algorithm)
            entries.append(KeyEntry.for_signing_key(purpose, label, f"{number:02x}", signer.public_key_der,
                                                    f"test/{purpose}"))
        generate_mac_key(hsm, f"{prefix}-codes", b"\x03")
        entries.append(KeyEntry.for_mac_key(f"{prefix}-codes", "03"))
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    KeyBundle(ceremony_id="test", created=created, keys=tuple(entries)).write(directory / "keys")
    pin_file = directory / "user-pin.txt"
    pin_file.write_text(token.user_pin)
    os.chmod(pin_file, 0o600)
    config_path = directory / "config.toml"
    config_path.write_text(f"""
[hsm]
module = "{module or token.module}"
token_label = "{token.label}"
softhsm_conf = "{token.conf}"
[hsm.pin]
source = "file"
path = "user-pin.txt"

[keys]
bundle = "keys"

[storage]
url = "sqlite:///ballots.sqlite3"

[sequencer]
batch_size = {batch_size}
max_wait_ms = 5
state_file = "sequencer-state.json"
""")
    return Kit(config_path=config_path, directory=directory, token=token)


def open_election(service, count: int = 20, definition: dict = DEMO_ELECTION) -> list[str]:
    """Create and open the test election with ``count`` codes; return the codes (display form)."""
    election = Election.from_dict(definition)
    service.storage.create_election(election)
    issued = list(codes_mod.issue(service.ballots.code_mac, election.id, count))
    service.storage.add_codes(election.id, [digest for _, digest in issued])
    service.storage.set_state(election.id, OPEN)
    return [codes_mod.display(code) for code, _ in issued]
