"""An exact-count ballot client: each code cast once, over keep-alive HTTP/1.1, asyncio.

The full-election benchmark must cast *exactly* the online ballots of the election, each
code once, and know the fate of every one; wrk (used for the throughput comparisons,
see :mod:`bench.loadgen`) runs for a duration instead. This client is plain asyncio
streams, no HTTP library: ~50 µs of Python per request, a few percent of a core at the
rates measured here (its CPU time is reported). It posts request bodies built beforehand
(:mod:`bench.ballots`: browser-sealed ballots are sealed there, before the timed part). A
ballot answered 503 ("receipt pending") is sent again later with the same body, as a
voter's page would; the service answers such a resubmission with the original receipt.

Loopback only, and bounded: ``deadline`` stops it, leaving the rest uncast.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CastReport:
    ballots: int
    done: int = 0
    statuses: Counter = field(default_factory=Counter)
    retries: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)  # seconds since start, per receipt
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    finished: bool = True

    def to_dict(self) -> dict:
        from .stats import latency_summary
        return {"ballots": self.ballots, "receipts": self.done, "statuses": dict(self.statuses),
                "retries": self.retries, "failed": self.failed, "seconds": round(self.seconds, 2),
                "receipts_per_s": round(self.done / self.seconds, 1) if self.seconds else None,
                "latency": latency_summary(self.latencies) if self.latencies else {},
                "client_cpu_seconds": round(self.client_cpu_seconds, 1), "finished": self.finished}


async def _connection(port: int, path: str, work: asyncio.Queue, report: CastReport, started: float,
                      deadline: float, max_tries: int) -> None:
    reader = writer = None
    try:
        while time.monotonic() < deadline:
            try:
                body, tries = work.get_nowait()
            except asyncio.QueueEmpty:
                return
            request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                sent = time.monotonic()
                try:
                    writer.write(request)
                    await writer.drain()
                    status_line = await reader.readline()
                    if not status_line:
                        raise ConnectionResetError("closed")
                    length, close = 0, False
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b"\n", b""):
                            break
                        name, _, value = line.decode("latin-1").partition(":")
                        name = name.strip().lower()
                        if name == "content-length":
                            length = int(value)
                        elif name == "connection" and value.strip().lower() == "close":
                            close = True
                    await reader.readexactly(length)
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    reader = writer = None
                    if attempt:
                        raise
            status = int(status_line.split()[1])
            report.statuses[status] += 1
            if close:
                writer.close()
                reader = writer = None
            if status in (200, 201):
                now = time.monotonic()
                report.done += 1
                report.latencies.append(now - sent)
                report.completions.append(now - started)
            elif status == 503 and tries + 1 < max_tries:
                report.retries += 1
                await asyncio.sleep(0.5)
                work.put_nowait((body, tries + 1))
            else:
                report.failed += 1
    finally:
        if writer is not None:
            writer.close()


async def _cast_all(port, path, bodies, connections, seconds, max_tries) -> CastReport:
    work: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        work.put_nowait((body.encode(), 0))
    report = CastReport(ballots=len(bodies))
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*[_connection(port, path, work, report, started, deadline, max_tries)
                           for _ in range(connections)])
    report.seconds = time.monotonic() - started
    report.finished = work.empty() and report.done + report.failed == report.ballots
    return report


def cast_all(port: int, election_id: str, bodies: list[str], *, connections: int,
             time_limit: float, max_tries: int = 5) -> CastReport:
    """POST every JSON body (one ballot, its own code) once to 127.0.0.1:``port``; stop at
    ``time_limit`` seconds."""
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    report = asyncio.run(_cast_all(port, f"/api/v1/elections/{election_id}/ballots", bodies, connections,
                                   time_limit, max_tries))
    after = resource.getrusage(resource.RUSAGE_SELF)
    report.client_cpu_seconds = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return report
