"""Opening the box: open and count 160,000 sealed ballots through SoftHSM, against the plain recount.

Not timed: a throwaway SoftHSM token with a derive-only sealing key made by the product's
own ceremony call, and 160,000 ballots of the benchmark election sealed to it (HPKE, as
the browser and the server seal them), as leaf v2; the same selections as 160,000 clear
leaf v1 for the comparison. Timed, side by side in the same rounds:

* **opening and counting**: :func:`hsm_signer.unsealing.open_box` (the tally's own code:
  worker processes, each with its own PKCS#11 session, ECDH in the HSM, HPKE's key
  schedule and AES-256-GCM, the plaintext format and the election's rules per ballot),
  then :func:`hsm_signer.recount.count_sealed` over the openings;
* **the plain recount**: :func:`hsm_signer.recount.count_leaves` over the clear leaves
  (what tallying an unsealed log costs).

The entries and openings live in memory (the storage's four calls the tally uses), so
the rows measure opening and counting, not the database.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor

from .common import ELECTION_DEFINITION, VOTES, Context, fmt
from .stats import median, per_round_ratios

NAME = "opening"
TITLE = "Opening and counting 160,000 sealed ballots through SoftHSM"
KEY_LABEL = "bench-sealing"


class _Memory:
    """The four storage calls :func:`open_box` and the count make, over lists."""

    def __init__(self, leaves: list[bytes]):
        self.leaves = leaves
        self.lines: list[bytes] = []

    def entries(self, _election: str, start: int, end: int) -> list[bytes]:
        return self.leaves[start:end]

    def openings_count(self, _election: str) -> int:
        return len(self.lines)

    def store_openings(self, _election: str, first: int, lines: list[bytes]) -> None:
        assert first == len(self.lines)
        self.lines.extend(lines)

    def openings(self, _election: str, start: int, end: int) -> list[bytes]:
        return self.lines[start:end]


def _seal_range(args: tuple[bytes, int, int, int]) -> list[bytes]:
    from hsm_signer.election import Election
    from hsm_signer.log.leaf import SealedLeaf
    from hsm_signer.log.sealed import padded_size, seal_ballot

    point, start, end, seed = args
    election = Election.from_dict(ELECTION_DEFINITION)
    size = padded_size(election)
    rng = random.Random(seed + start)
    out = []
    for i in range(start, end):
        ballot_id = hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()[:32]
        votes = VOTES[rng.randrange(len(VOTES))]
        out.append(SealedLeaf(election.id, "ballot", ballot_id,
                              seal_ballot(point, election.id, "online", ballot_id, votes, size)).to_bytes())
    return out


def _clear_leaves(count: int, seed: int) -> list[bytes]:
    from hsm_signer.log.leaf import Leaf
    rng = random.Random(seed)
    return [Leaf(ELECTION_DEFINITION["id"], "ballot", hashlib.sha256(f"c{seed}/{i}".encode()).hexdigest()[:32],
                 VOTES[rng.randrange(len(VOTES))]).to_bytes() for i in range(count)]


def run(ctx: Context) -> dict:
    from hsm_signer.election import Election
    from hsm_signer.hsm.manage import generate_sealing_key
    from hsm_signer.openings import Opening, openings_digest
    from hsm_signer.recount import count_leaves, count_sealed
    from hsm_signer.unsealing import SealingAccess, open_box

    from .hsmkit import new_token, open_hsm, token_directory

    count, rounds = ctx.size(160_000, 300), ctx.size(3, 1)
    workers = max(2, os.cpu_count() or 2)
    conf = token_directory(ctx.workdir)
    token = new_token(conf, "bench-sealing")
    hsm = open_hsm(token)
    point = generate_sealing_key(hsm, KEY_LABEL, b"\x01").public_key
    hsm.close()
    election = Election.from_dict(ELECTION_DEFINITION)

    started = time.perf_counter()
    step = 5_000
    with ProcessPoolExecutor(workers) as pool:
        sealed = [leaf for part in pool.map(_seal_range, [(point, s, min(s + step, count), 2026)
                                                          for s in range(0, count, step)]) for leaf in part]
    clear = _clear_leaves(count, 2026)
    ctx.log(f"opening: sealed {count:,} ballots to the HSM's sealing key in {time.perf_counter() - started:.1f} s")
    access = SealingAccess(module=token.module, token_label=token.label, key_label=KEY_LABEL, public_point=point,
                           pin=token.user_pin, softhsm_conf=str(conf))

    open_rates, plain_rates, opened_seconds = [], [], []
    for r in range(rounds):
        for which in (("open", "plain") if r % 2 == 0 else ("plain", "open")):
            if which == "open":
                store = _Memory(sealed)
                t = time.perf_counter()
                open_box(store, election, count, access, workers=workers)
                opened = time.perf_counter() - t
                data = b"".join(store.lines)
                tally = count_sealed(election, zip(sealed, (Opening.from_line(x) for x in store.lines)),
                                     openings_digest(data), reopen=False)
                seconds = time.perf_counter() - t
                assert tally.size == count and tally.invalid == 0
                open_rates.append(count / seconds)
                opened_seconds.append(opened)
            else:
                t = time.perf_counter()
                tally = count_leaves(election, clear)
                plain_rates.append(count / (time.perf_counter() - t))
        ctx.log(f"opening round {r + 1}: open+count {open_rates[-1]:,.0f} ballots/s "
                f"({opened_seconds[-1]:.1f} s opening), plain recount {plain_rates[-1]:,.0f}/s")
    ratio = round(median(per_round_ratios(open_rates, plain_rates)), 4)
    rate = median(open_rates)
    summary = (f"{count:,} sealed ballots opened through SoftHSM and counted in {count / rate:.1f} s "
               f"({rate:,.0f} ballots/s, {workers} worker processes; opening alone {median(opened_seconds):.1f} s); "
               f"{ratio:.3f}× the rate of the plain recount of the same ballots in clear "
               f"({median(plain_rates):,.0f}/s)")
    return {"summary": summary, "ratios": {"open_and_count_over_plain_recount": ratio},
            "ballots": count, "workers": workers, "open_and_count_per_s": round(rate),
            "plain_recount_per_s": round(median(plain_rates)), "opening_seconds": round(median(opened_seconds), 1),
            "rounds": {"open": [round(x) for x in open_rates], "plain": [round(x) for x in plain_rates]}}


def render(result: dict, charts) -> str:
    return "\n".join([
        result["summary"] + ".", "",
        "| | ballots/s (median) | rounds |", "|---|---:|---|",
        f"| open (HSM ECDH + HPKE + rules) and count | {fmt(result['open_and_count_per_s'])} | "
        f"{', '.join(f'{x:,}' for x in result['rounds']['open'])} |",
        f"| plain recount of clear leaves | {fmt(result['plain_recount_per_s'])} | "
        f"{', '.join(f'{x:,}' for x in result['rounds']['plain'])} |"])
