"""Benchmarks for hsm-signer: one command, machine-readable results, a report with charts.

Run ``python -m bench`` (everything, full size), ``python -m bench --smoke`` (every
benchmark at a size that finishes in under a minute, for CI), or ``python -m bench --only
NAME``. Results go to ``bench/results/`` as ``results.json``, ``REPORT.md`` and PNG charts.

Rules every benchmark here follows, because these machines are small, shared and noisy:

* every comparison is measured side by side in the same run, rounds interleaved, and
  reported as a ratio of medians over the rounds;
* load goes to 127.0.0.1 only, bounded in request count and in time;
* each benchmark runs in its own child process (its own PKCS#11 state, SoftHSM token
  directory and memory), with a time limit;
* a smoke run checks structure only: no wall-clock threshold is ever asserted.

Nothing in this package is used by the product; the slow-HSM wrapper in
:mod:`bench.slowhsm` in particular exists only to simulate a slow device.
"""
