"""SoftHSM tokens, keys and a p11-kit network HSM for benchmarks.

Each benchmark process gets its own SoftHSM token directory under its scratch directory
(``SOFTHSM2_CONF`` is set before the PKCS#11 module is first loaded: SoftHSM reads it at
``C_Initialize``, once per process). Keys are made with the product's own ceremony calls
(:mod:`hsm_signer.hsm.manage`), so they have the production attributes. The PINs are
fixed, benchmark-only values on throwaway tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm_signer import softhsm
from hsm_signer.p11kit import P11KIT_SERVER, P11KitServer  # noqa: F401  (re-exported)
from hsm_signer.p11kit import find_client as find_p11kit_client  # noqa: F401

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



