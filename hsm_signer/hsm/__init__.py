"""PKCS#11 access: the only package of hsm-signer that imports pkcs11.

Use :class:`Hsm` to open a token and :meth:`Hsm.signer` / :meth:`Hsm.mac` to get keys
behind the narrow interface of :mod:`hsm_signer.signer`. Key creation for the ceremony
is in :mod:`.manage`. PIN sources are in :mod:`.pins`.
"""

from .pins import EnvPin, FilePin, FixedPin, PinSource, PromptPin
from .token import PKCS11_LOCK, Hsm, RetryPolicy
from .keys import HsmMac, HsmSigner

__all__ = ["Hsm", "HsmMac", "HsmSigner", "PKCS11_LOCK", "RetryPolicy",
           "PinSource", "EnvPin", "FilePin", "FixedPin", "PromptPin"]
