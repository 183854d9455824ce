"""The key ceremony: config, runner, transcript, verification (see CEREMONY.md).

Public surface, for the CLI and the demo:

* :func:`ceremony.config.load_config` / :func:`ceremony.config.load_rehearsal` — a
  validated :class:`~ceremony.config.CeremonyConfig` (with dotted-path overrides);
* :func:`ceremony.runner.run_ceremony` — run it with a :mod:`ceremony.io` object, get a
  :class:`~ceremony.runner.CeremonyResult`;
* :func:`ceremony.verify.verify_bundle_dir` — check a published bundle (no HSM needed);
* :func:`ceremony.retire.run_retirement` with :func:`ceremony.retire_config.load_retire_config`.

Layout: ``config``/``retire_config`` read configs; ``io`` talks to the room; ``runner`` and
``retire`` are the scripts (the only modules that touch the HSM, through
:mod:`hsm_signer.hsm`); ``transcript``, ``signatures``, ``evidence``, ``summary`` define the
published formats; ``verify`` checks a bundle directory (``verify_ceremony`` and
``verify_retirement``, on the shared ``checks``); ``output`` writes files
without ever overwriting.
"""
