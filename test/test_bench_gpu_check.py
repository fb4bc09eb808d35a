"""bench/gpu_check.sh --cpu-dry-run: every part of the GPU check runs a few steps on the CPU, so the script a GPU
session runs cannot rot. A part that raises makes the exit code 1 (and this test fail)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~10+ min at nice 15 on the loaded 2-core machine (two subprocesses importing torch)
@pytest.mark.timeout(2400)
def test_bench_gpu_check_cpu_dry_run_runs_every_part(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_TIMEOUT_S": "2300"}
    proc = subprocess.run([str(ROOT / "bench" / "gpu_check.sh"), "--cpu-dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=2350)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    parts = {line.split("|")[1].strip() for line in table[1:]}
    assert {"parity", "latency", "throughput", "training"} <= parts, proc.stdout
    assert not any("FAILED" in line for line in table)
    assert any(line.startswith("| training | final coverage") for line in table)
