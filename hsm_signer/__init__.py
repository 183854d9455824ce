"""hsm-signer: hardware-backed ballot signing with verifiable receipts.

The core is importable without Flask. Only :mod:`hsm_signer.hsm` imports PKCS#11;
verification code (:mod:`hsm_signer.log`, :mod:`hsm_signer.verify`) imports neither.
"""

__version__ = "0.1.0"
