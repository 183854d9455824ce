"""The full election at the motivating scale: 160,000 members, end to end, on this machine.

The officials' commands as they would run them (``hsm-signer ...`` processes on one
config: SoftHSM keys, the election's sealing key on a token of its own as the ceremony
makes it, no clear ballots allowed, SQLite WAL + synchronous=FULL), the voters over HTTP:

1. ``codes issue`` — 160,000 codes hashed in the HSM, the CSV for the printers;
2. ``election open``;
3. online — 112,000 ballots cast over HTTP to ``hsm-signer serve`` (started before
   the poll opens, not timed) by 64 concurrent keep-alive clients, each code once, each
   answer a signed receipt (:mod:`bench.httpclient`: exact counts, which wrk cannot do).
   Each ballot is what a voter's browser sends, ``{"code", "sealed"}``, sealed with the
   product's HPKE code before the phase starts (:mod:`bench.ballots`, not timed);
4. postal — 48,000 ballots recorded with ``postal record --csv`` in batches of 4,000,
   while the server (and its sequencer) still runs; the command seals each ballot;
5. ``election close`` — the running sequencer signs the last batch and the final
   checkpoint (the server is then stopped, not timed);
6. ``tally`` — the box opened through the sealing token (two of three tally trustees'
   share files in ``[tally.sealing]``), every sealed ballot counted, the tally signed; 7. ``record export --no-audit``; 8. ``audit`` of the exported record.

The total is the sum of phases 1-8 (setting up the token, keys and election definition
is the key ceremony's job, weeks earlier, and is not counted). Every phase has a time
limit; a phase that hits it ends the run there ("did not finish").
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

from .cast import RATE_LIMIT_ENV
from .common import ELECTION_DEFINITION, VOTES, Context, fmt, goal

NAME = "election"
TITLE = "The full election at the motivating scale (160,000 members)"

PHASES = ("codes", "open", "online", "postal", "close", "tally", "export", "audit")


def missing_prerequisite() -> str | None:
    from hsm_signer.commands import MODULES
    for command in ("codes", "postal", "serve", "tally", "record", "audit"):
        if command not in MODULES:
            return f"the `hsm-signer {command}` command does not exist yet"
    try:
        from hsm_signer.web import create_app  # noqa: F401
    except ImportError as exc:
        return f"the web app cannot be imported yet ({exc})"
    return None


def _definition_toml(definition: dict) -> str:
    def q(text: str) -> str:
        return json.dumps(text)
    lines = [f"id = {q(definition['id'])}", f"title = {q(definition['title'])}"]
    for contest in definition["contests"]:
        options = ", ".join(f"{{ id = {q(o['id'])}, title = {q(o['title'])} }}" for o in contest["options"])
        lines += ["", "[[contests]]", f"id = {q(contest['id'])}", f"title = {q(contest['title'])}",
                  f"max_choices = {contest.get('max_choices', 1)}", f"options = [{options}]"]
    return "\n".join(lines) + "\n"


class PhaseTimeout(Exception):
    pass


class Election:
    """One election run: the commands, the server, and each phase's time."""

    def __init__(self, ctx: Context, directory: Path, conf: Path, label: str, *, limits: dict):
        from . import hsmkit
        self.ctx = ctx
        self.directory = directory
        self.kit = hsmkit.service_kit(directory, label=label, token_conf=conf)
        self.point = hsmkit.add_sealing_key(self.kit, conf, label=f"{label}-sealing", trustees=True)
        self.limits = limits
        self.env = dict(RATE_LIMIT_ENV)  # all load from one address (bench/cast.py says why)
        self.phases: dict[str, dict] = {}
        self.tag = "as shipped"

    def command(self, *args: str) -> list[str]:
        from .servers import python_module
        return python_module("hsm_signer", "--config", str(self.kit.config_path), *args)

    def cli(self, phase: str | None, *args: str, timeout: float) -> tuple[float, str]:
        import os

        from .servers import ROOT
        started = time.perf_counter()
        try:
            out = subprocess.run(self.command(*args), cwd=ROOT, env={**os.environ, **self.env},
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PhaseTimeout(f"`hsm-signer {' '.join(args[:2])}` did not finish within {timeout:.0f} s") from None
        seconds = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"`hsm-signer {' '.join(args)}` failed ({out.returncode}): {out.stderr.strip()[-800:]}")
        if phase:
            self.phases.setdefault(phase, {"seconds": 0.0})["seconds"] += seconds
        return seconds, out.stdout

    def log(self, message: str) -> None:
        self.ctx.log(f"election [{self.tag}]: {message}")

    def run(self, members: int, online: int, postal: int, batch: int, connections: int) -> dict:
        from . import ballots, httpclient
        from .servers import Server, free_port

        eid = ELECTION_DEFINITION["id"]
        definition = self.directory / "election.toml"
        definition.write_text(_definition_toml(ELECTION_DEFINITION), encoding="utf-8")
        self.cli(None, "election", "create", str(definition), timeout=60)
        codes_csv = self.directory / "codes.csv"
        outcome: dict = {"finished": False}
        try:
            self.cli("codes", "codes", "issue", eid, "--count", str(members), "--out", str(codes_csv),
                     timeout=self.limits["codes"])
            self.log(f"issued {members:,} codes in {self.phases['codes']['seconds']:.1f} s")
            self.cli("open", "election", "open", eid, timeout=60)
            with open(codes_csv, newline="", encoding="utf-8") as handle:
                codes = [row["code"] for row in csv.DictReader(handle)]
            sealing_started = time.perf_counter()
            online_ballots = ballots.sealed_bodies(self.point, codes[:online])
            outcome["browser_sealing_seconds"] = round(time.perf_counter() - sealing_started, 1)
            self.log(f"sealed {online:,} online ballots as browsers do in {outcome['browser_sealing_seconds']} s "
                     "(not timed)")
            postal_files = self._postal_batches(codes[online:online + postal], batch)

            port = free_port()
            server = Server(f"hsm-signer serve [{self.tag}]",
                            self.command("serve", "--host", "127.0.0.1", "--port", str(port)), port,
                            self.directory / "server.log", env=self.env)
            started = time.perf_counter()
            with server:
                outcome["server_start_seconds"] = round(time.perf_counter() - started, 1)
                report = httpclient.cast_all(port, eid, online_ballots, connections=connections,
                                             time_limit=self.limits["online"])
                self.phases["online"] = {"seconds": report.seconds, **report.to_dict(),
                                         "rate_over_time": _rate_over_time(report.completions)}
                self.log(f"online: {report.done:,} receipts in {report.seconds:.1f} s "
                         f"({report.done / report.seconds:,.0f}/s), statuses {dict(report.statuses)}")
                if not report.finished:
                    raise PhaseTimeout(f"online voting stopped at the {self.limits['online']:.0f} s limit after "
                                       f"{report.done:,} of {online:,} receipts")
                deadline = time.monotonic() + self.limits["postal"]
                for i, path in enumerate(postal_files):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PhaseTimeout(f"postal recording stopped at the {self.limits['postal']:.0f} s limit "
                                           f"after {i} of {len(postal_files)} batches")
                    self.cli("postal", "postal", "record", eid, "--csv", str(path), timeout=remaining)
                self.phases["postal"]["batches"] = len(postal_files)
                self.log(f"postal: {postal:,} in {len(postal_files)} batches, {self.phases['postal']['seconds']:.1f} s")
                self.cli("close", "election", "close", eid, timeout=self.limits["close"])
            self.cli("tally", "tally", eid, timeout=self.limits["tally"])
            record = self.directory / "record"
            self.cli("export", "record", "export", eid, str(record), "--no-audit", timeout=self.limits["export"])
            self.cli("audit", "audit", str(record), timeout=self.limits["audit"])
            outcome["finished"] = True
            outcome["check"] = self._check(eid, online, postal)
        except PhaseTimeout as exc:
            outcome["stopped"] = str(exc)
            self.log(f"did not finish: {exc}")
        done = [p for p in PHASES if p in self.phases]
        outcome["phases"] = {p: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.phases[p].items()}
                             for p in done}
        outcome["total_seconds"] = round(sum(self.phases[p]["seconds"] for p in done), 1)
        outcome["limits_seconds"] = self.limits
        return outcome

    def _postal_batches(self, codes: list[str], batch: int) -> list[Path]:
        contests = [c["id"] for c in ELECTION_DEFINITION["contests"]]
        files = []
        for start in range(0, len(codes), batch):
            path = self.directory / f"postal-{start // batch + 1:03d}.csv"
            with open(path, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["code", *contests])
                for i, code in enumerate(codes[start:start + batch], start):
                    vote = VOTES[i % len(VOTES)]
                    writer.writerow([code, *(" ".join(vote[c]) for c in contests)])
            files.append(path)
        return files

    def _check(self, eid: str, online: int, postal: int) -> dict:
        """Not timed: the election really holds every ballot, once, in the right channel, and
        the tally opened every one of them to a valid vote."""
        from hsm_signer.openings import Opening
        from hsm_signer.storage.sqlite import SQLiteStorage
        storage = SQLiteStorage(self.kit.directory / "ballots.sqlite3")
        try:
            counts = storage.count_codes(eid)
            size = storage.tree_size(eid)
            tally = storage.get_tally(eid)
            opened_valid = sum(Opening.from_line(line).status == "valid" for line in storage.openings(eid, 0, size))
        finally:
            storage.close()
        check = {"tree_size": size, "codes": counts, "tally_signed": tally is not None, "opened_valid": opened_valid}
        if (size != online + postal or counts["online"] != online or counts["postal"] != postal or tally is None
                or opened_valid != size):
            raise RuntimeError(f"the election does not add up: {check}")
        return check


def _rate_over_time(completions: list[float], bucket: float = 5.0) -> list[tuple[float, float]]:
    """(end of bucket in seconds, receipts per second in that bucket)."""
    if not completions:
        return []
    buckets = [0] * (int(max(completions) // bucket) + 1)
    for t in completions:
        buckets[int(t // bucket)] += 1
    return [(round((i + 1) * bucket, 1), round(n / bucket, 1)) for i, n in enumerate(buckets)]


def run(ctx: Context) -> dict:
    from . import hsmkit

    scale = ctx.size(1, 0.01)
    members, online, postal = round(160_000 * scale), round(112_000 * scale), round(48_000 * scale)
    batch = ctx.size(4_000, 240)
    connections = ctx.size(64, 32)
    conf = hsmkit.token_directory(ctx.workdir)
    limits = {"codes": ctx.size(600, 60), "online": ctx.size(600, 60), "postal": ctx.size(600, 60),
              "close": ctx.size(600, 60), "tally": ctx.size(600, 60), "export": ctx.size(600, 60),
              "audit": ctx.size(600, 60)}
    runs = {"as shipped": Election(ctx, ctx.workdir / "shipped", conf, "bench-election-1",
                                   limits=limits).run(members, online, postal, batch, connections)}
    shipped = runs["as shipped"]
    ratios = {"total_over_3_minutes": round(shipped["total_seconds"] / 180, 3)}
    online_phase = shipped["phases"].get("online", {})
    if online_phase.get("receipts_per_s"):
        ratios["online_receipts_per_s_over_needed"] = round(online_phase["receipts_per_s"] / (online / 60), 3)
    if shipped["finished"]:
        measured = shipped["total_seconds"]
        g = goal("full election total", measured, 180, higher_is_better=False, unit=" s")
        summary = (f"{members:,} codes, {online:,} online + {postal:,} postal ballots, close, tally, export, audit: "
                   f"{shipped['total_seconds']:,.0f} s in total (goal < 180 s)")
    else:
        g = {"name": "full election total", "target": "≤ 180 s", "measured": None, "met": False,
             "shortfall": f"did not finish: {shipped['stopped']} (≥ {shipped['total_seconds']:,.0f} s spent)"}
        summary = f"as shipped, did not finish: {shipped['stopped']}"
    return {"summary": summary, "ratios": ratios, "goals": [g], "runs": runs,
            "params": {"members": members, "online": online, "postal": postal, "postal_batch": batch,
                       "ballots": "sealed: online by the browser (before the phase), postal by the server",
                       "connections": connections, "limits_seconds": limits}}


def render(result: dict, charts) -> str:
    runs, p = result["runs"], result["params"]
    lines = [result["summary"] + ".", "",
             f"{p['members']:,} codes; {p['online']:,} online ballots from {p['connections']} concurrent HTTP clients; "
             f"{p['postal']:,} postal ballots in CSV batches of {p['postal_batch']:,}. Every ballot is sealed to the "
             "election's sealing key (on a token of its own; no clear ballots allowed): the online ones as a "
             "voter's browser seals them, before the phase (not timed), the postal ones by `postal record`; the "
             "tally opens them all through the sealing token with two of three trustees' shares. "
             "Seconds per phase:", "",
             "| phase | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for phase in PHASES:
        cells = []
        for run in runs.values():
            entry = run["phases"].get(phase)
            cells.append(fmt(entry["seconds"]) if entry else "–")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(
        f"**{fmt(r['total_seconds'])}**" + ("" if r["finished"] else " (did not finish)") for r in runs.values()) + " |")
    lines.append("")
    for name, run in runs.items():
        online = run["phases"].get("online")
        if online:
            lat = online.get("latency", {})
            lines.append(f"- {name}: online {online['receipts']:,} receipts at {fmt(online['receipts_per_s'])}/s, "
                         f"p50 {fmt(lat.get('p50_ms'))} ms, p99 {fmt(lat.get('p99_ms'))} ms, "
                         f"{online['retries']} resubmissions after a 503, "
                         + (f"{online['failed']} failed ({', '.join(f'HTTP {k}: {v}' for k, v in online['statuses'].items() if str(k) not in ('200', '201'))}), "
                            if online.get("failed") else "")
                         + f"client CPU {online['client_cpu_seconds']} s"
                         + (f"; stopped: {run['stopped']}" if run.get("stopped") else "")
                         + (f"; checked: tree of {run['check']['tree_size']:,} entries, codes {run['check']['codes']}"
                            if run.get("check") else ""))
    lines.append("")
    series = {name: ([t for t, _ in run["phases"]["online"]["rate_over_time"]],
                     [r for _, r in run["phases"]["online"]["rate_over_time"]])
              for name, run in runs.items() if run["phases"].get("online", {}).get("rate_over_time")}
    if series:
        lines.append(charts.line("election-online", series, title="Online phase: receipts per second (5 s buckets)",
                                 xlabel="seconds into the online phase", ylabel="receipts/s"))
    return "\n".join(lines)
