"""SoftHSM tokens, whole throwaway services and a p11-kit network HSM for benchmarks.

Each benchmark process gets its own SoftHSM token directory under its scratch directory
(``SOFTHSM2_CONF`` is set before the PKCS#11 module is first loaded: SoftHSM reads it at
``C_Initialize``, once per process). Keys are made with the product's own ceremony calls
(:mod:`hsm_signer.hsm.manage`), so they have the production attributes. The PINs are
fixed, benchmark-only values on throwaway tokens. The service directories and the
p11-kit server are the tests' own helpers (:mod:`hsm_signer.testing`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hsm_signer import softhsm
from hsm_signer.testing.p11kit import P11KIT_SERVER, P11KitServer  # noqa: F401  (re-exported)
from hsm_signer.testing.p11kit import find_client as find_p11kit_client  # noqa: F401
from hsm_signer.testing.service import Kit, provision

from .common import ELECTION_DEFINITION

SO_PIN = "bench-so-pin-1234"
USER_PIN = "bench-user-pin-5678"


def token_directory(workdir: Path) -> Path:
    """Create this process's SoftHSM token directory and point ``SOFTHSM2_CONF`` at it."""
    conf = softhsm.write_conf(Path(workdir) / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


def new_token(conf: Path, label: str) -> softhsm.SoftHsmToken:
    return softhsm.init_token(conf, label, so_pin=SO_PIN, user_pin=USER_PIN)


def open_hsm(token: softhsm.SoftHsmToken, module: str | None = None):
    from hsm_signer.hsm import FixedPin, Hsm
    return Hsm(module or token.module, token_label=token.label, pin_source=FixedPin(token.user_pin)).open()


def service_kit(directory: Path, *, label: str = "bench-svc", token_conf: Path | None = None,
                batch_size: int = 1000, max_wait_ms: int = 20) -> Kit:
    """A token with checkpoint, tally and code keys; keys.json; a PIN file; config.toml.

    ``token_conf``: the SoftHSM token directory to add the token to (one per process:
    SoftHSM reads its configuration once); by default a new one in ``directory``.
    Token labels must be unique within a token directory.
    """
    token = new_token(token_conf or token_directory(directory), label)
    return provision(token, directory, ceremony_id="bench", batch_size=batch_size, max_wait_ms=max_wait_ms,
                     header="Written by bench/hsmkit.py for one benchmark run (SoftHSM, throwaway keys).")


def open_election(service, count: int, *, definition: dict = ELECTION_DEFINITION) -> list[str]:
    """Create and open the benchmark election with ``count`` codes; return them (display form)."""
    from hsm_signer.testing.service import open_election as open_throwaway
    return open_throwaway(service, definition, count)


def add_sealing_key(kit: Kit, conf: Path, *, label: str, trustees: bool = False) -> bytes:
    """Give ``kit``'s bundle a sealing key, made on a token of its own as the ceremony does
    (the service refuses to run on a token that holds it); returns its public point. The
    service then seals every ballot it is given in clear (postal, no-JS) to this key, and
    the kit's config no longer allows clear ballots (as a real one never does).

    ``trustees``: the token's PIN is split 2-of-3 among tally trustees as the ceremony does
    (rehearsal share files in the kit's directory) and the config gains the
    ``[tally.sealing]`` table with two of them, so ``hsm-signer tally`` can open the box."""
    from hsm_signer.bundle import KeyBundle, KeyEntry
    from hsm_signer.hsm import shares
    from hsm_signer.hsm.manage import generate_sealing_key

    split = shares.split_new_pin(2, 3) if trustees else None
    token = softhsm.init_token(conf, label, so_pin=SO_PIN, user_pin=split.pin) if split else new_token(conf, label)
    hsm = open_hsm(token)
    try:
        point = generate_sealing_key(hsm, f"{label}-key", b"\x04").public_key
    finally:
        hsm.close()
    keys = kit.directory / "keys"
    bundle = KeyBundle.load(keys)
    (keys / "keys.json").unlink()  # KeyBundle.write never overwrites
    KeyBundle(bundle.ceremony_id, bundle.created,
              (*bundle.keys, KeyEntry.for_sealing_key(f"{label}-key", "04", point))).write(keys)
    text = kit.config_path.read_text(encoding="utf-8")
    clear = "\n[voting]\nallow_clear_ballots = true\n"
    if clear not in text:
        raise RuntimeError(f"{kit.config_path} does not end its [voting] table as bench/hsmkit.py expects")
    text = text.replace(clear, "\n")
    if split:
        files = []
        for index, mnemonic in enumerate(split.shares[:split.threshold], 1):
            path = kit.directory / f"trustee-share-{index}.txt"
            path.write_text(shares.share_file_text(mnemonic, holder=f"bench trustee {index}", index=index,
                                                   threshold=split.threshold, count=split.count, ceremony_id="bench",
                                                   rehearsal=True, sealing=True), encoding="utf-8")
            os.chmod(path, 0o600)
            files.append(str(path))
        text += "\n".join(["", "[tally.sealing]", f"token_label = {json.dumps(label)}", "[tally.sealing.pin]",
                           'source = "shares"', f"share_files = {json.dumps(files)}", ""])
    kit.config_path.write_text(text, encoding="utf-8")
    if kit.load().voting.allow_clear_ballots:
        raise RuntimeError(f"{kit.config_path} still allows clear ballots")
    return point
