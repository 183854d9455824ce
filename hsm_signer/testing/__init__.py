"""Helpers for the tests and the benchmarks, kept in one place: never imported by the product.

* :mod:`.service` — throwaway service directories on a SoftHSM token (keys, bundle, PIN
  file, config), and opening an election with voting codes on them;
* :mod:`.p11kit` — a ``p11-kit server`` in front of a SoftHSM token: a network HSM a test
  or a benchmark can kill.

Everything here is for SoftHSM tokens and files a test owns (the PIN sits in a plain
file, nobody witnessed the keys); nothing here may serve an election. The layer contract
(pyproject.toml) keeps the product from importing it.
"""
