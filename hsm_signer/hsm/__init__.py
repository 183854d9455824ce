"""PKCS#11 access: the only package of hsm-signer that imports pkcs11.

Use :class:`Hsm` to open a token and :meth:`Hsm.signer` / :meth:`Hsm.mac` / :meth:`Hsm.deriver` to get keys
behind the narrow interface of :mod:`hsm_signer.signer`. Key creation for the ceremony
is in :mod:`.manage`. PIN sources are in :mod:`.pins`; :func:`open_hsm` opens the token a
configuration file's ``[hsm]`` table names.
"""

from .keys import HsmMac, HsmSigner
from .deriver import HsmDeriver
from .pins import EnvPin, FilePin, FixedPin, PinSource, PromptPin, pin_source
from .token import PKCS11_LOCK, Hsm, RetryPolicy, open_hsm

__all__ = ["PKCS11_LOCK", "EnvPin", "FilePin", "FixedPin", "Hsm", "HsmDeriver", "HsmMac", "HsmSigner", "PinSource",
           "PromptPin", "RetryPolicy", "open_hsm", "pin_source"]
