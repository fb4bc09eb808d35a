"""bench/gpu_check.sh --cpu-dry-run: every row of the GPU check's table runs once on the CPU, so the script a GPU
session runs cannot rot. A part that raises makes the exit code 1 (and these tests fail)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["eager fp32", "compile default", "compile reduce-overhead"]  # the latency rows, per camera count


def run_dry(out: Path, *extra: str, timeout_s: int) -> list[list[str]]:
    """The dry run's table rows, as lists of cells, after checking its exit code and that no part failed."""
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_TIMEOUT_S": str(timeout_s - 30)}
    proc = subprocess.run([str(ROOT / "bench" / "gpu_check.sh"), "--cpu-dry-run", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=timeout_s)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| part ")]
    assert not any(row[1] == "FAILED" for row in rows), proc.stdout
    return rows


def latency_rows(rows):
    return {row[1]: row for row in rows if row[0] == "latency"}


# 33 s (20 s of CPU) on the 2-core machine at load 2-5. At nice 15 beside a training run at nice 0 it gets a few
# percent of the CPU and took over 15 minutes: the limits are for that, not for a quiet machine.
@pytest.mark.timeout(1800)
def test_bench_gpu_check_cpu_dry_run_runs_every_row(tmp_path):
    rows = run_dry(tmp_path, timeout_s=1750)
    latency = latency_rows(rows)
    for n in (1, 2):
        for path in PATHS:
            row = latency[f"{n} cam 32x32, {path}"]
            assert row[2].endswith(" ms"), row
            assert ("gate eager" if path == "eager fp32" else "gate accepted") in row[3], row
            assert ("torch.compile disabled" in row[3]) == (path != "eager fp32"), row
    assert [row[1] for row in rows if row[0] == "throughput"] == ["stage 2, image recipe, fp32",
                                                                  "stage 2, image recipe, bf16 AMP"]
    assert any(row[0] == "parity" and row[2] == "0.00e+00" for row in rows)
    training = {row[1]: row for row in rows if row[0] == "training"}
    assert "vqbet-train, image recipe" in training and "final coverage, 2 episodes official" in training
    timed = [row[1] for row in rows if row[0] == "time"]
    assert timed == ["parity", "latency", "throughput", "training", "total, with start-up"]


@pytest.mark.slow  # a cold inductor compile of each compiled row: minutes on the 2-core machine
@pytest.mark.timeout(2400)
def test_bench_gpu_check_cpu_dry_run_compiles_the_compiled_rows_with_inductor(tmp_path):
    latency = latency_rows(run_dry(tmp_path, "--dry-run-compile", "--parts", "latency", "--latency-budget-s", "3000",
                                   timeout_s=2300))
    for n in (1, 2):
        for path in PATHS[1:]:
            row = latency[f"{n} cam 32x32, {path}"]
            assert "gate accepted" in row[3] and "torch.compile disabled" not in row[3], row
