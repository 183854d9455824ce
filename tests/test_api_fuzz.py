"""Schemathesis against a live ``hsm-signer serve``: every check, every phase, stateful too.

The run is bounded (a few dozen examples per operation, one worker) so it takes well
under a minute. The rules a JSON Schema cannot say (index < size, from <= to, start <=
end, a ballot that fits the election) are declared in tests/schemathesis_hooks.py, so
what it reports is a real fault: a server error, an answer outside the OpenAPI document,
a valid request refused or an invalid one accepted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness import require
from test_web_live import DEFINITION, ServeProcess, cli, http

from servicekit import DEMO_ELECTION, provision

ELECTION = DEMO_ELECTION["id"]
ST = Path(sys.executable).with_name("st")
EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _facts(server: ServeProcess, codes: list[str]) -> dict:
    """What the hooks need: the signed tree size, the ballot, the unused codes."""
    api = f"{server.url}/api/v1/elections/{ELECTION}"
    for code in codes[:3]:  # a small signed tree, so proofs and entries have something to prove
        status, _, body = http("POST", api + "/ballots", {"code": code, "selections": {"leader": ["bob"],
                                                                                        "board": ["dan"]}})
        assert status == 201, body
    election = json.loads(http("GET", api)[2])
    contests = [{"id": c["id"], "max_choices": c["max_choices"], "options": [o["id"] for o in c["options"]]}
                for c in election["contests"]]
    return {"signed_size": election["signed_tree_size"], "contests": contests, "codes": codes[3:]}


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tokens, tmp_path):
    require(ST.exists(), "schemathesis is not installed (pip install -e '.[test]')")
    kit = provision(tokens, tmp_path)
    (tmp_path / "election.toml").write_text(DEFINITION)
    cli(kit.config_path, "election", "create", str(tmp_path / "election.toml"))
    cli(kit.config_path, "election", "open", ELECTION)
    cli(kit.config_path, "codes", "issue", ELECTION, "--count", "12", "--out", str(tmp_path / "codes.csv"))
    codes = [line.split(",")[0] for line in (tmp_path / "codes.csv").read_text().splitlines()[1:]]
    # The fuzzer sends thousands of wrong codes from one address: lift the code limits for it
    # (they have tests of their own) so that it reaches the casting path, not only 429s.
    server = ServeProcess(kit.config_path, tmp_path / "serve.log",
                          HSM_SIGNER_WEB_RATELIMIT_DEFAULT="100000 per minute",
                          HSM_SIGNER_WEB_CODE_FAILURES_FREE="100000").start()
    try:
        facts = _facts(server, codes)
        assert facts["signed_size"] == 3
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "HSM_SIGNER_FUZZ_FACTS": json.dumps(facts),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(
            [str(ST), "--config-file", str(CONFIG), "run",
             f"{server.url}/api/v1/openapi.json", "--checks", "all",
             "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(EXAMPLES),
             "--workers", "1", "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    finally:
        server.stop()
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 200, summary
    stateful = re.search(r"Stateful \(in [^)]*\)\s+Scenarios:\s+(\d+)", summary)
    assert stateful and int(stateful[1]) > 0, summary  # the stateful phase ran, along the documented links
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
