"""The fuzzers (tests/fuzz/) in a seeded short mode, each in a subprocess so that a crash shows
as a failure naming the case that caused it. Full mode, the command the closing notes quote:

    TORCH_LOWBIT_FUZZ_CASES=5000 python -m pytest -q tests/test_fuzz.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
CASES = int(os.environ.get("TORCH_LOWBIT_FUZZ_CASES", "0"))


def _run(script: str, cases: int, seed: int, tmp_path: Path, timeout: int) -> dict:
    progress = tmp_path / "progress.json"
    proc = subprocess.run(
        [sys.executable, str(FUZZ / script), "--cases", str(cases), "--seed", str(seed), "--progress", str(progress)],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ, TORCH_LOWBIT_POISON="1"),
    )
    if proc.returncode < 0:
        last = progress.read_text() if progress.exists() else "(none)"
        pytest.fail(f"{script} crashed with signal {-proc.returncode} on case {last}\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    assert proc.returncode == 0 and summary.get("findings") == 0, f"{script}: {summary}\n{proc.stderr[-6000:]}"
    return summary


def test_fuzzed_checkpoints_load_identically_or_raise_checkpoint_error(tmp_path):
    summary = _run("fuzz_checkpoints.py", CASES or 300, 0, tmp_path, timeout=3600)
    assert summary["cases"] == (CASES or 300) and summary["named_error"] > 0 and summary["loaded_identical"] > 0


def test_fuzzed_op_calls_match_the_reference_or_raise_named_errors(tmp_path):
    pytest.importorskip("hypothesis")
    summary = _run("fuzz_ops.py", CASES or 300, 0, tmp_path, timeout=3600)
    assert summary["cases"] == (CASES or 300) and summary["matched"] > 0 and summary["refused"] > 0
