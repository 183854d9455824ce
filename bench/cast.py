"""Cast throughput against the framework's ceiling, over HTTP, with a fast and a slow HSM.

Servers are started afresh for every measurement, rounds interleaved, in the two server
configurations docs/WEB.md documents, each compared with a hello-world app served by
*exactly* the same configuration:

* ``serve`` (the default, "enough for an election of the 2022 size on one host"):
  ``hsm-signer serve`` — gunicorn, one worker process, ``gthread`` with the default
  request threads (``serve.DEFAULT_THREADS``, 64), and the sequencer in a process of its
  own that ``serve`` starts and supervises; its hello-world twin is
  :mod:`bench.hello_server`, which builds the very same gunicorn application (same
  thread count) and only swaps the WSGI app;
* ``workers``: ``gunicorn --workers 4 --worker-class gthread --threads 16
  --access-logfile - --no-control-socket 'hsm_signer.web:create_app()'`` plus one separate
  ``hsm-signer sequencer`` process (workers poll for receipts); its twin is the same
  gunicorn command line with ``'bench.hello_app:create_app()'``.

The real app runs with SoftHSM keys, the election's sealing key on a token of its own
(:func:`bench.hsmkit.add_sealing_key`, no ``[voting] allow_clear_ballots``) and SQLite WAL
+ synchronous=FULL; every 2xx answer is a signed receipt (v2, of a sealed leaf) with its
inclusion proof. The ballots are what voters' browsers send: ``{"code", "sealed":
{"ballot_id", "ciphertext"}}``, sealed with the product's HPKE code before the server
starts (:mod:`bench.ballots`), so the load generator costs no more than before. One row,
*server-sealed*, posts ``{"code", "selections"}`` instead (as a voter without JavaScript
reaches the server), which the server seals itself. The slow HSM is :mod:`bench.slow_server`
(+100 ms per checkpoint signature, a USB-class HSM; the sequencer process of a slow
server is slow too). Hello-world (:mod:`bench.hello_app`) parses the JSON body and
answers 201.

The full run adds rows for the alternatives the defaults were chosen over, each on its
own fresh server: a device that does one PKCS#11 operation at a time across all the
server's processes ("device-exclusive"), the sequencer as a thread of the web worker
(``--sequencer thread``, the previous design) and 16 request threads (``--threads 16``,
the previous default).

Load: ``wrk`` on loopback posting the prepared request bodies, each with a distinct voting
code (Lua script ``bench/wrk/cast.lua``; why wrk: :mod:`bench.loadgen`), the same connections and duration
for every server, after a short warm-up with other codes. Rate limits stay on but are
raised for the run (``HSM_SIGNER_WEB_RATELIMIT_DEFAULT``, and the wrong-code budget,
``HSM_SIGNER_WEB_CODE_FAILURES_FREE``, which counts every attempt in flight until its code
is checked): all load comes from one address, where real voters each have their own.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path

from .common import ELECTION_DEFINITION, Context, fmt, goal
from .stats import median, per_round_ratios

NAME = "cast"
TITLE = "Cast throughput vs the framework ceiling (HTTP), fast and slow HSM"

RATE_LIMIT_ENV = {"HSM_SIGNER_WEB_RATELIMIT_DEFAULT": "100000000 per minute",
                  "HSM_SIGNER_WEB_CODE_FAILURES_FREE": "100000000"}


@dataclass(frozen=True)
class Variant:
    name: str
    config: str = "serve"        # "serve" (hsm-signer serve) or "workers" (gunicorn 4 workers + sequencer)
    hello: bool = False
    slow: bool = False
    exclusive: bool = False      # slow HSM holding a lock across the server's processes through the delay
    sequencer: str = "process"   # serve --sequencer: "process" (the default) or "thread" (in the web worker)
    threads: int | None = None   # request threads; None: serve.DEFAULT_THREADS, or WORKER_THREADS for "workers"
    full_only: bool = False      # extra rows of the full run (not in --smoke)
    ballots: str = "sealed"      # "sealed" (sealed beforehand, as a browser does) or "selections" (the server seals)


HELLO, FAST, SLOW = "hello-world", "hsm-signer", "hsm-signer, slow HSM"
SERVER_SEALED = "hsm-signer, server-sealed"
WORKERS, WORKER_THREADS = 4, 16
"""docs/WEB.md's several-workers command line: gunicorn workers, and threads in each."""
MAX_CODES_RATE = 1500
"""Ballots/s the first round issues codes for (later rounds: twice the rate seen)."""
PROFILE_SECONDS = 6
"""Seconds per py-spy recording; a profiled server's recordings follow one another under one load."""
VARIANTS = (
    Variant(HELLO, hello=True),
    Variant(FAST),
    Variant(SLOW, slow=True),
    Variant(SERVER_SEALED, ballots="selections"),
    Variant("slow HSM, device-exclusive", slow=True, exclusive=True, full_only=True),
    Variant("sequencer as a thread", sequencer="thread", full_only=True),
    Variant("sequencer as a thread, slow HSM", slow=True, sequencer="thread", full_only=True),
    Variant("16 threads", threads=16, full_only=True),
    Variant("16 threads, slow HSM", slow=True, threads=16, full_only=True),
    Variant("workers: hello-world", config="workers", hello=True, full_only=True),
    Variant("workers: hsm-signer", config="workers", full_only=True),
    Variant("workers: hsm-signer, slow HSM", config="workers", slow=True, full_only=True),
)
ALTERNATIVES = (SERVER_SEALED, "slow HSM, device-exclusive", "sequencer as a thread", "sequencer as a thread, slow HSM",
                "16 threads", "16 threads, slow HSM")
"""Rows that change one thing of the default server (their chart colour differs)."""


def _default_threads() -> int:
    """``hsm-signer serve``'s request threads when ``--threads`` is not given."""
    from hsm_signer.commands.serve import DEFAULT_THREADS
    return DEFAULT_THREADS


def _hello_of(variant: Variant) -> str:
    """The hello-world a row is divided by: its configuration's, always at the default thread count."""
    return "workers: hello-world" if variant.config == "workers" else HELLO


def missing_prerequisite() -> str | None:
    from . import loadgen
    if not loadgen.available():
        return "wrk is not installed (apt-get install wrk)"
    try:
        from hsm_signer.web import create_app  # noqa: F401
    except ImportError as exc:
        return f"the web app cannot be imported yet ({exc})"
    return None


def _log_counts(kit) -> tuple[int, int]:
    """(signatures, sequenced ballots) so far in the kit's database."""
    from hsm_signer.storage.sqlite import SQLiteStorage
    storage = SQLiteStorage(kit.directory / "ballots.sqlite3")
    try:
        return len(storage.checkpoints(ELECTION_DEFINITION["id"])), storage.tree_size(ELECTION_DEFINITION["id"])
    finally:
        storage.close()


def _measure(ctx: Context, name: str, server, codes: tuple[Path, Path], election_id: str, *, seconds: float,
             warmup: float, connections: int, kit=None) -> dict:
    from . import loadgen
    with server:
        loadgen.cast_load(server.port, codes[0], election_id, seconds=warmup, connections=connections)
        before = _log_counts(kit) if kit else None
        result = loadgen.cast_load(server.port, codes[1], election_id, seconds=seconds, connections=connections)
        after = _log_counts(kit) if kit else None
    entry = result.to_dict()
    if kit:
        signatures, sequenced = after[0] - before[0], after[1] - before[1]
        entry.update(signatures=signatures, sequenced=sequenced,
                     signatures_per_ballot=round(signatures / sequenced, 4) if sequenced else None)
    ctx.log(f"cast/{name}: {entry['ok_per_s']:,.0f}/s ok, p50 {entry['latency_ms']['p50']} ms, "
            f"p99 {entry['latency_ms']['p99']} ms, statuses {entry['statuses']}, errors {entry['errors']}"
            + (f", {entry['signatures']} signatures for {entry['sequenced']} ballots" if kit else ""))
    return entry


def _gunicorn_command(app: str, port: int, threads: int | None) -> list[str]:
    """docs/WEB.md's several-workers command line, on loopback."""
    import sys
    return [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "gthread",
            "--threads", str(threads or WORKER_THREADS), "--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
            "--no-control-socket", app]


def _real_server(directory: Path, conf: Path, label: str, variant: Variant, *, codes_needed: int, serial: int):
    """A fresh kit (signing token, sealing token), its election open with ``codes_needed``
    codes, a request body for each (sealed here, as a browser does, unless the variant
    posts selections), and the server, not started yet."""
    from hsm_signer.service import Service

    from . import ballots, hsmkit
    from .servers import Server, ServerGroup, free_port, python_module

    kit = hsmkit.service_kit(directory, label=label, token_conf=conf)
    point = hsmkit.add_sealing_key(kit, conf, label=f"{label}-sealing")
    service = Service.open(kit.load())
    try:
        codes = hsmkit.open_election(service, codes_needed)
    finally:
        service.close()
    bodies = ballots.sealed_bodies(point, codes) if variant.ballots == "sealed" else ballots.clear_bodies(codes)
    port = free_port()
    cli = "bench.slow_server" if variant.slow else "hsm_signer"
    env = {**RATE_LIMIT_ENV, "HSM_SIGNER_BENCH_SLOW_HSM_EXCLUSIVE": "1" if variant.exclusive else "0",
           "HSM_SIGNER_CONFIG": str(kit.config_path)}
    if variant.config == "serve":
        args = ["--config", str(kit.config_path), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if variant.threads:
            args += ["--threads", str(variant.threads)]
        if variant.sequencer == "thread":
            args += ["--sequencer", "thread"]
        server = Server(f"{variant.name} #{serial}", python_module(cli, *args), port, directory / "server.log", env=env)
        return kit, bodies, server
    web = Server(f"{variant.name} #{serial}", _gunicorn_command("hsm_signer.web:create_app()", port, variant.threads), port,
                 directory / "server.log", env=env)
    sequencer = Server(f"sequencer #{serial}", python_module(cli, "--config", str(kit.config_path), "sequencer"),
                       None, directory / "sequencer.log", env=env, ready_text="sequencer running")
    return kit, bodies, ServerGroup([sequencer, web])


def _hello_server(directory: Path, hello_kit, serial: int, variant: Variant):
    from .servers import Server, free_port, python_module

    port = free_port()
    if variant.config == "workers":
        command = _gunicorn_command("bench.hello_app:create_app()", port, variant.threads)
    else:
        command = python_module("bench.hello_server", "--config", str(hello_kit.config_path), "--port", str(port))
    return Server(f"{variant.name} #{serial}", command, port, directory / "server.log")


def run(ctx: Context) -> dict:
    from . import ballots, hsmkit

    seconds, warmup = ctx.size(12, 2), ctx.size(3, 1)
    connections, rounds = ctx.size(64, 32), ctx.size(3, 1)
    variants = [v for v in VARIANTS if not (ctx.smoke and v.full_only)]
    conf = hsmkit.token_directory(ctx.workdir)
    hello_kit = hsmkit.service_kit(ctx.workdir / "hello", label="bench-hello", token_conf=conf)
    hello_codes = ballots.lookalike_bodies([f"HELLO-{i:07d}" for i in range(ctx.size(200_000, 20_000))])
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    bounds: dict[str, float] = {}
    serial = 0
    for r in range(rounds):
        # The hello-worlds first in each round: their rates bound how many codes the others use.
        hellos = [v for v in variants if v.hello]
        others = [v for v in variants if not v.hello]
        shift = r % len(others)
        for variant in hellos + others[shift:] + others[:shift]:
            serial += 1
            directory = ctx.workdir / f"run-{serial}"
            directory.mkdir()
            if variant.hello:
                split = len(hello_codes) // 4
                files = (ballots.write_bodies(directory / "warm.txt", hello_codes[:split]),
                         ballots.write_bodies(directory / "codes.txt", hello_codes[split:]))
                runs[variant.name].append(_measure(ctx, variant.name, _hello_server(directory, hello_kit, serial, variant),
                                                   files, "bench-election", seconds=seconds, warmup=warmup,
                                                   connections=connections))
                bounds[variant.name] = runs[variant.name][-1]["ok_per_s"] * 1.3 + 200
                continue
            # Codes to issue: enough for this variant's rate, bounded so that issuing them stays quick
            # (a run that runs out reuses codes, and says so in reused_codes).
            earlier = [run["ok_per_s"] for run in runs[variant.name]]
            bound = max(earlier) * 2 + 300 if earlier else min(bounds[_hello_of(variant)], MAX_CODES_RATE)
            warm_n = math.ceil(bound * warmup) + 100
            kit, codes, server = _real_server(directory, conf, f"bench-cast-{serial}", variant, serial=serial,
                                              codes_needed=warm_n + math.ceil(bound * seconds) + 100)
            files = (ballots.write_bodies(directory / "warm.txt", codes[:warm_n]),
                     ballots.write_bodies(directory / "codes.txt", codes[warm_n:]))
            runs[variant.name].append(_measure(ctx, variant.name, server, files, ELECTION_DEFINITION["id"], seconds=seconds,
                                               warmup=warmup, connections=connections, kit=kit))

    def rates(name: str) -> list[float]:
        return [run["ok_per_s"] for run in runs[name]]

    table = {}
    for variant in variants:
        name = variant.name
        table[name] = {
            "ok_per_s": round(median(rates(name)), 1),
            **{f"{p}_ms": median([run["latency_ms"][p] for run in runs[name]]) for p in ("p50", "p95", "p99")},
            "non_ok": sum(run["requests"] - run["ok"] for run in runs[name]),
            "reused_codes": sum(run["reused_codes"] for run in runs[name]),
            "over_hello": round(median(per_round_ratios(rates(name), rates(_hello_of(variant)))), 3),
        }
        if not variant.hello:
            table[name]["signatures_per_ballot"] = median([run["signatures_per_ballot"] or math.nan
                                                           for run in runs[name]])
    ratios = {
        "real_over_hello": table[FAST]["over_hello"],
        "slow_over_fast": round(median(per_round_ratios(rates(SLOW), rates(FAST))), 3),
        "slow_over_hello": table[SLOW]["over_hello"],
        "server_sealed_over_browser_sealed": round(median(per_round_ratios(rates(SERVER_SEALED), rates(FAST))), 3),
    }
    for variant in variants[3:]:
        if not variant.hello:
            ratios[f"{variant.name}.over_hello"] = table[variant.name]["over_hello"]
    pairs = {"sequencer as a thread, slow HSM": "sequencer as a thread",
             "16 threads, slow HSM": "16 threads",
             "workers: hsm-signer, slow HSM": "workers: hsm-signer",
             "slow HSM, device-exclusive": FAST}
    for slow_name, fast_name in pairs.items():
        if slow_name in runs:
            ratios[f"{slow_name}.slow_over_fast"] = round(median(per_round_ratios(rates(slow_name), rates(fast_name))), 3)
    fast, slow = table[FAST], table[SLOW]
    goals = [
        goal("receipts / hello-world throughput", ratios["real_over_hello"], 0.7, higher_is_better=True),
        goal("p99 latency, fast HSM", fast["p99_ms"], 250, higher_is_better=False, unit=" ms"),
        goal("slow-HSM / fast-HSM throughput", ratios["slow_over_fast"], 0.8, higher_is_better=True),
        goal("p99 latency, slow HSM", slow["p99_ms"], 400, higher_is_better=False, unit=" ms"),
    ]
    summary = (f"{fast['ok_per_s']:,.0f} ballots/s with receipts vs {table[HELLO]['ok_per_s']:,.0f}/s "
               f"hello-world ({ratios['real_over_hello']:.2f}×), p99 {fast['p99_ms']:.0f} ms, "
               f"{fast['signatures_per_ballot']:.3f} HSM signatures per ballot; slow HSM "
               f"{slow['ok_per_s']:,.0f}/s ({ratios['slow_over_fast']:.2f}× fast), p99 {slow['p99_ms']:.0f} ms; "
               f"ballots browser-sealed; sealed by the server instead {table[SERVER_SEALED]['ok_per_s']:,.0f}/s "
               f"({ratios['server_sealed_over_browser_sealed']:.2f}×)")
    result = {"summary": summary, "ratios": ratios, "goals": goals, "table": table, "runs": runs,
              "variants": {v.name: {"config": v.config, "slow": v.slow, "exclusive": v.exclusive,
                                    "sequencer": v.sequencer, "threads": v.threads, "ballots": v.ballots}
                           for v in variants},
              "params": {"seconds": seconds, "warmup_seconds": warmup, "connections": connections,
                         "rounds": rounds, "wrk_threads": 2, "workers": WORKERS, "worker_threads": WORKER_THREADS,
                         "slow_delay_ms": 100,
                         "serve_threads": _default_threads(), "ballots": "browser-sealed (HPKE, sealed before the run)"}}
    if not ctx.smoke and not all(g["met"] for g in goals):
        result["profile"] = _profile(ctx, conf, connections, MAX_CODES_RATE)
    return result


def _profile(ctx: Context, conf: Path, connections: int, bound: float) -> dict:
    """Where the default server's time goes under the same load: py-spy on its web worker.

    Fast HSM only, the sequencer process too (where its CPU goes): with the sequencer in
    a process of its own, the worker's profile no longer shows it.
    """
    import threading

    from . import ballots, loadgen
    from .servers import profile, py_spy_available, summarize_profile

    if not py_spy_available():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    profiles = {}
    each = PROFILE_SECONDS
    for slow in (False, True):
        directory = ctx.workdir / f"profile-{'slow' if slow else 'fast'}"
        variant = Variant(SLOW if slow else FAST, slow=slow)
        # (what, heading, GIL holder only)
        recordings = [("worker", "cpu (GIL holder)", True), ("worker", "wall clock (all threads)", False)]
        if not slow:
            recordings.append(("sequencer", "sequencer process, cpu", True))
        seconds = each * len(recordings) + 2
        kit, codes, server = _real_server(directory, conf, f"bench-profile-{int(slow)}", variant,
                                          codes_needed=math.ceil(bound * (seconds + 2)) + 500, serial=99)
        codes_file = ballots.write_bodies(directory / "codes.txt", codes)
        with server:
            load = threading.Thread(target=loadgen.cast_load, args=(server.port, codes_file, ELECTION_DEFINITION["id"]),
                                    kwargs={"seconds": seconds, "connections": connections})
            load.start()
            time.sleep(1)
            pids = {"worker": server.worker_pids()[0], "sequencer": next(iter(server.sequencer_pids()), None)}
            entry = {}
            for what, heading, gil_only in recordings:
                if pids[what] is None:
                    entry[heading] = {"error": f"no {what} process found"}
                    continue
                raw = directory / f"profile-{what}-{'gil' if gil_only else 'wall'}.txt"
                spy = profile(pids[what], each, raw, gil_only=gil_only)
                spy.wait(timeout=each + 30)
                entry[heading] = summarize_profile(raw) if raw.exists() else {"error": spy.stderr.read().decode()[-300:]}
                entry[heading]["seconds"] = each
            load.join()
        profiles["slow HSM" if slow else "fast HSM"] = entry
        ctx.log(f"cast/profile {'slow' if slow else 'fast'}: "
                + ", ".join(f"{heading}: {data.get('samples')} samples" for heading, data in entry.items()))
    return profiles


def render(result: dict, charts) -> str:
    table, p = result["table"], result["params"]
    threads = p.get("serve_threads") or _default_threads()
    worker_threads = p.get("worker_threads", WORKER_THREADS)
    lines = [result["summary"] + ".", "",
             f"Server configurations: *serve* = `hsm-signer serve` (gunicorn, 1 worker, gthread, {threads} threads, "
             "the sequencer in its own process, started and supervised by serve); *workers* = gunicorn "
             f"{p['workers']} workers × gthread {worker_threads} threads + a separate `hsm-signer sequencer` "
             "(docs/WEB.md). Each hello-world runs in exactly its configuration, at its default thread count. "
             f"Load: wrk, {p['connections']} connections, {p['wrk_threads']} threads, {p['seconds']} s per run after "
             f"a {p['warmup_seconds']} s warm-up, median of {p['rounds']} interleaved rounds, each on a fresh server "
             "and database. Ballots: every row but *server-sealed* posts what a voter's browser sends, "
             "`{\"code\", \"sealed\": {\"ballot_id\", \"ciphertext\"}}`, sealed (HPKE to the election's "
             "sealing key) before the run; *server-sealed* posts `{\"code\", \"selections\"}` as a voter "
             "without JavaScript does, and the server seals each ballot. Hello-world gets bodies of the sealed "
             "shape and length.", "",
             "| server | ballots/s (2xx) | / hello-world | p50 ms | p95 ms | p99 ms | HSM signatures per ballot | non-2xx |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in table.items():
        spb = row.get("signatures_per_ballot")
        lines.append(f"| {name} | {fmt(row['ok_per_s'])} | {row['over_hello']:.2f} | {fmt(row['p50_ms'])} | "
                     f"{fmt(row['p95_ms'])} | {fmt(row['p99_ms'])} | {'–' if spb is None else f'{spb:.4f}'} | "
                     f"{row['non_ok']} |")
    if len(table) > 4:
        lines += ["", "Rows after the first four are extra measurements of the same run, each changing one thing "
                  "of the default server; \"/ hello-world\" is against the hello-world of the same server "
                  "configuration at its default thread count (for the *16 threads* rows too). "
                  "*device-exclusive*: the slow HSM does one PKCS#11 operation at a time across all the "
                  "server's processes (the code HMACs wait behind each 100 ms signature); "
                  "*sequencer as a thread*: `hsm-signer serve --sequencer thread`, the previous design, where the "
                  "sequencer shares the web worker's interpreter and GIL; *16 threads*: `hsm-signer serve "
                  f"--threads 16`, the previous default (now {threads})."]
    lines.append("")
    lines.append("| goal | target | measured | verdict |")
    lines.append("|---|---|---:|---|")
    for g in result["goals"]:
        lines.append(f"| {g['name']} | {g['target']} | {g['measured']} | "
                     f"{'met' if g['met'] else 'MISSED, ' + g.get('shortfall', '')} |")
    lines.append("")
    colors = ["#999999" if "hello" in name else "#55a868" if name in ALTERNATIVES else "#4c72b0" for name in table]
    lines.append(charts.hbars("cast", list(table), [row["ok_per_s"] for row in table.values()],
                              title="Ballots per second over HTTP (grey: hello-world; green: an alternative)",
                              xlabel="2xx answers per second (log)", logx=True, colors=colors,
                              annotate=[f"{row['ok_per_s']:,.0f}/s, p99 {row['p99_ms']:,.0f} ms"
                                        for row in table.values()]))
    profile_data = result.get("profile")
    if profile_data:
        lines += ["", "**Profile** (py-spy on the default server under the same load: its web worker, and with "
                  "the fast HSM its sequencer process):", ""]
        if "skipped" in profile_data:
            lines.append(profile_data["skipped"])
        for variant, kinds in profile_data.items():
            if not isinstance(kinds, dict) or "skipped" in kinds:
                continue
            for kind, data in kinds.items():
                if not data.get("samples"):
                    continue
                lines.append(f"*{variant}, {kind}* ({data['samples']} samples at 200 Hz over "
                             f"{data.get('seconds', '?')} s): innermost frames | project frames (inclusive)")
                lines.append("")
                lines.append("| innermost frame | % | project frame | % |")
                lines.append("|---|---:|---|---:|")
                blank = {"frame": "", "percent": ""}
                for a, b in itertools.zip_longest(data["own"][:10], data["project"][:10], fillvalue=blank):
                    lines.append(f"| `{a['frame']}` | {a['percent']} | `{b['frame']}` | {b['percent']} |")
                lines.append("")
    return "\n".join(lines)
