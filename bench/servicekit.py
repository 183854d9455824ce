"""A whole service for benchmarks: a SoftHSM token with keys, a key bundle, a config file.

The short way round the key ceremony (as the tests' own kit does,
:mod:`hsm_signer.throwaway`): keys are made with the same HSM-layer calls the ceremony uses, the bundle with the same dataclasses, but
without the transcript and share-splitting steps. Storage is SQLite (WAL,
synchronous=FULL), the embedded default. The PIN file holds a benchmark-only PIN.
"""

from __future__ import annotations

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
    from hsm_signer.throwaway import write_service_dir

    directory = Path(directory)
    conf = token_conf or hsmkit.token_directory(directory)
    token = hsmkit.new_token(conf, label)
    config_path = write_service_dir(
        token, directory, ceremony_id="bench", batch_size=batch_size, max_wait_ms=max_wait_ms,
        header="Written by bench/servicekit.py for one benchmark run (SoftHSM, throwaway keys).")
    return Kit(directory=directory, config_path=config_path, token=token, election_id=ELECTION_DEFINITION["id"])


def open_election(service, count: int, *, definition: dict = ELECTION_DEFINITION) -> list[str]:
    """Create and open the benchmark election with ``count`` codes; return them (display form)."""
    from hsm_signer.throwaway import open_election as open_throwaway
    return open_throwaway(service, definition, count)
