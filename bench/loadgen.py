"""Load on loopback with ``wrk`` and the Lua script ``bench/wrk/cast.lua``.

Why wrk rather than a Python client: on a 2-core machine the load generator shares the
CPU with the server under test, and a Python client (GIL-bound, ~50-100 µs of Python per
request) would eat a large and uneven share of it, capping the hello-world ceiling well
below what the server can do. wrk is C with LuaJIT, costs a few µs per request and
reports latency percentiles from a full histogram. It is a closed-loop generator: each
connection sends its next request when the previous answer arrives, so throughput is
connections / latency; the benchmark therefore uses enough connections to keep the
server busy, and the same number for every variant.

Bounded: every run has a fixed duration, a fixed number of connections, a per-request
timeout, a process time limit, and only ever targets 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk") / "cast.lua"
WRK = "wrk"


def available() -> bool:
    return shutil.which(WRK) is not None


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    reused_codes: int

    @property
    def ok(self) -> int:
        """Answers with a receipt (201 new, 200 repeated) — for hello-world, its 201s."""
        return self.statuses.get("201", 0) + self.statuses.get("200", 0)

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds

    def to_dict(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 3), "ok": self.ok,
                "ok_per_s": round(self.ok_per_s, 1), "statuses": self.statuses, "errors": self.errors,
                "latency_ms": self.latency_ms, "reused_codes": self.reused_codes}


def cast_load(port: int, bodies_file: Path, election_id: str, *, seconds: float, connections: int,
              threads: int = 2, timeout_s: int = 10) -> LoadResult:
    """Run wrk against ``http://127.0.0.1:port`` for ``seconds``, posting the request bodies of
    ``bodies_file`` (one a line, :func:`bench.ballots.write_bodies`); parse the script's JSON line."""
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s}s",
               "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}", "--", str(bodies_file), election_id, str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    line = next((text for text in reversed(out.stdout.splitlines()) if text.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(line)
    lat = data["latency_us"]
    return LoadResult(
        requests=data["requests"], seconds=data["duration_us"] / 1e6, statuses=data["statuses"],
        errors=data["errors"], reused_codes=data["reused_codes"],
        latency_ms={k: round(lat[k] / 1000, 2) for k in ("p50", "p90", "p95", "p99", "max", "mean")})
