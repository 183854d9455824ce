"""The append-only ballot log: Merkle tree and proofs, leaves, signed notes, checkpoints, receipts.

Everything here is pure and offline: it imports neither Flask nor PKCS#11, so voters and
auditors can run it alone. Signing goes through the :class:`hsm_signer.signer.Signer`
interface, never through an HSM library directly.
"""
