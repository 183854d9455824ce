"""A whole service for benchmarks: a SoftHSM token with keys, a key bundle, a config file.

The short way round the key ceremony (as the tests' own kit does): keys are made with
the same HSM-layer calls the ceremony uses, the bundle with the same dataclasses, but
without the transcript and share-splitting steps. Storage is SQLite (WAL,
synchronous=FULL), the embedded default. The PIN file holds a benchmark-only PIN.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from . import hsmkit
from .common import ELECTION_DEFINITION


@dataclass
class Kit:
    directory: Path
    config_path: Path
    token: object
    election_id: str

    def load(self):
        from hsm_signer import config as config_mod
        return config_mod.load(self.config_path)


def provision(directory: Path, *, label: str = "bench-svc", token_conf: Path | None = None,
              batch_size: int = 1000, max_wait_ms: int = 20) -> Kit:
    """A token with checkpoint, tally and code keys; keys.json; a PIN file; config.toml.

    ``token_conf``: the SoftHSM token directory to add the token to (one per process:
    SoftHSM reads its configuration once); by default a new one in ``directory``.
    Token labels must be unique within a token directory.
    """
    from hsm_signer.bundle import KeyBundle, KeyEntry
    from hsm_signer.hsm.manage import generate_mac_key, generate_signing_key

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    conf = token_conf or hsmkit.token_directory(directory)
    token = hsmkit.new_token(conf, label)
    entries = []
    hsm = hsmkit.open_hsm(token)
    try:
        for number, purpose in enumerate(("checkpoint", "tally"), 1):
            key_label = f"{label}-{purpose}"
            signer = generate_signing_key(hsm, key_label, bytes([number]), "ecdsa-p256")
            entries.append(KeyEntry.for_signing_key(purpose, key_label, f"{number:02x}", signer.public_key_der,
                                                    f"bench/{purpose}"))
        generate_mac_key(hsm, f"{label}-codes", b"\x03")
        entries.append(KeyEntry.for_mac_key(f"{label}-codes", "03"))
    finally:
        hsm.close()
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    KeyBundle(ceremony_id="bench", created=created, keys=tuple(entries)).write(directory / "keys")
    pin_file = directory / "user-pin.txt"
    pin_file.write_text(token.user_pin)
    os.chmod(pin_file, 0o600)
    config_path = directory / "config.toml"
    config_path.write_text(f"""# Written by bench/servicekit.py for one benchmark run (SoftHSM, throwaway keys).
[hsm]
module = "{token.module}"
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
max_wait_ms = {max_wait_ms}
state_file = "sequencer-state.json"
""", encoding="utf-8")
    return Kit(directory=directory, config_path=config_path, token=token, election_id=ELECTION_DEFINITION["id"])


def open_election(service, count: int, *, definition: dict = ELECTION_DEFINITION) -> list[str]:
    """Create and open the benchmark election with ``count`` codes; return them (display form)."""
    from hsm_signer import codes as codes_mod
    from hsm_signer.election import OPEN, Election

    election = Election.from_dict(definition)
    service.storage.create_election(election)
    issued = list(codes_mod.issue(service.ballots.code_mac, election.id, count))
    service.storage.add_codes(election.id, [digest for _, digest in issued])
    service.storage.set_state(election.id, OPEN)
    return [codes_mod.display(code) for code, _ in issued]
