"""The load benchmark, tiny: 20 agents, 10 contacts a second for 5 seconds, on SQLite.

It checks that the script runs end to end against the real server and reports sane figures; how fast
is for people to read (no timing asserts here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("load_engine.py")


@pytest.mark.timeout(300)
def test_load_script_runs_tiny_and_reports_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--agents", "20", "--rate", "10", "--duration", "5",
         "--handle-min", "0.05", "--handle-max", "0.2", "--json", str(out),
         "--server-log", str(tmp_path / "server.log")],
        check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"load script failed:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result  # the same object on stdout

    assert result["database"] == "sqlite" and result["agents"] == 20
    assert result["errors"] == 0, result["error_samples"]
    assert result["contacts"] > 0
    # every contact created was offered to an agent, and completed by it before the end
    assert result["offered"] == result["contacts"] == result["completed"]
    assert 0 <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
    for key in ("rss_mb_ready", "rss_mb_start", "rss_mb_end", "rss_mb_peak"):
        assert result[key] > 0, key
    assert result["rss_mb_peak"] >= max(result["rss_mb_start"], result["rss_mb_end"])
    assert result["server_cpu_s"] > 0
