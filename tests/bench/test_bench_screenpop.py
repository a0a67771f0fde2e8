"""The screen-pop benchmark, tiny: 8 agents, 30 contacts at 15 a second, builtin CRM on SQLite.

It checks that the script runs end to end against the real server and that every offer got exactly one
pop, after it, with the statuses its callers call for; how fast is for people to read (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("bench_screenpop.py")


@pytest.mark.timeout(300)
def test_screenpop_bench_runs_tiny_and_reports_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--agents", "8", "--contacts", "30", "--rate", "15", "--residents", "4",
         "--known", "0.5", "--json", str(out), "--server-log", str(tmp_path / "server.log")],
        check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"screen-pop bench failed:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result

    assert result["agents"] == 8 and result["contacts"] == 30 and result["crm"] == "builtin"
    assert result["errors"] == 0, result["error_samples"]
    assert result["pops"] == result["completed"] == 30 and result["missing_pops"] == 0
    assert result["pop_before_offer"] == 0, "a pop overtook its offer"
    by_status = result["pops_by_status"]
    assert set(by_status) <= {"matched", "no_match"} and sum(by_status.values()) == 30
    assert by_status.get("matched", 0) > 0 and by_status.get("no_match", 0) > 0
    figures = [result[f"offer_to_pop_{k}_ms"] for k in ("p50", "p90", "p99", "max")]
    assert 0 <= figures[0] and figures == sorted(figures)
