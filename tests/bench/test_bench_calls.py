"""Smoke test of `switchboard bench calls`: a few real SIP calls through a real engine (SIPp on loopback).

It checks the figures the benchmark promises are there and that these few calls all succeeded; speed is
what the benchmark prints, never asserted. One call at a time: the embedded back end's pjsua2 wheel holds
at most 4 SIP legs (PJSUA_MAX_CALLS), i.e. two bridged calls, and a new INVITE that arrives while an
ended call's legs are still being torn down would get 486 from the SIP stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli import main

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) is needed")]

KEYS = {"attempted", "completed", "failed", "answer_ms_p50", "answer_ms_p99", "connect_ms_p50", "connect_ms_p99",
        "engine_cpu_pct", "engine_peak_rss_mb", "peak_concurrent", "queued_by_engine", "answered_by_agents",
        "engine_survived", "rate_per_s", "concurrent_limit", "duration_s", "hold_s"}


def test_bench_calls_prints_its_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "calls", "--rate", "0.5", "--concurrent", "1", "--agents", "2", "--duration", "8", "--hold", "1",
                 "--workdir", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    result = json.loads(out)
    assert KEYS <= set(result), KEYS - set(result)
    assert code == 0, result
    assert result["attempted"] == 4 and result["completed"] == 4 and result["failed"] == 0, result
    assert result["engine_survived"] is True
    # every call reached the ACD and an agent (the SIPp station), with audio played through the bridge
    assert result["queued_by_engine"] == 4 and result["answered_by_agents"] == 4, result
    for key in ("answer_ms_p50", "answer_ms_p99", "connect_ms_p50", "connect_ms_p99"):
        assert isinstance(result[key], float) and result[key] >= 0, (key, result[key])
    assert result["answer_ms_p50"] <= result["answer_ms_p99"]
    assert result["engine_peak_rss_mb"] > 0 and result["engine_cpu_pct"] >= 0
    assert (tmp_path / "engine.log").exists() and (tmp_path / "stat.csv").exists()


def test_bench_calls_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "calls", "--rate", "0"]) == 2
    assert "--rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "calls", "--concurrent", "0"])
