"""Smoke tests of benchmarks/: each script's quick run writes a complete report with real
timings, and the hand-written JAX and PyTorch peers compute what tf_gradrnn computes."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
MISSING_PEERS = [m for m in ("jax", "torch") if importlib.util.find_spec(m) is None]
needs_peers = pytest.mark.skipif(
    bool(MISSING_PEERS),
    reason=f"{' and '.join(MISSING_PEERS)} not installed (pip install -e '.[bench]')",
)


def run_bench(args, tmp_path, timeout=600):
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(report: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in report.splitlines() if line.startswith("| tiny")]
    return [[cell.strip() for cell in row] for row in rows]


def test_quick_run_writes_report(tmp_path):
    output = tmp_path / "RESULTS.md"
    result = run_bench(["--quick", "--output", str(output)], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text()
    for section in ("## Machine", "## Command", "## FLOP count", "## Matmul reference"):
        assert section in report
    assert "## Results" in report and "## Notes" in report
    assert "f = 2*B*(D+H)*U + 2*B*U^2 + 2*B*U" in report
    assert "--quick --output" in report
    assert "GFLOP/s" in report.split("## Matmul reference")[1]

    rows = table_rows(report)
    # 2 modes x (naive, package jit_compile=False, package jit_compile=True)
    assert len(rows) == 6, report
    assert {row[1] for row in rows} == {"train", "infer"}
    for row in rows:
        median_ms, iqr_ms, ratio, gflops, _, first_call_s, peak_mb, diff = row[3:]
        assert float(median_ms) > 0 and float(iqr_ms) >= 0 and float(ratio) > 0
        assert float(gflops) > 0 and float(first_call_s) > 0 and float(peak_mb) >= 0
        if "naive" not in row[2]:
            # The package computes what the naive cell computes.
            assert float(diff) < 1e-4, row
    assert sum("(best)" in row[2] for row in rows) == 2
    # The printed report is the written one.
    assert "## Results" in result.stdout


def test_gpu_without_gpu_exits_with_a_message(tmp_path):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = run_bench(["--quick", "--device", "gpu"], tmp_path, timeout=60)
    assert result.returncode == 2
    assert "no GPU" in result.stderr


def test_overhead_and_memory_scripts_run_and_report(tmp_path):
    overhead = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--size", "tiny"]
        + ["--steps", "1", "3", "--reps", "2", "--gemm"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert overhead.returncode == 0, overhead.stderr[-2000:]
    rows = [line for line in overhead.stdout.splitlines() if line.startswith("| ")]
    assert len([r for r in rows if r.startswith(("| naive", "| tf_gradrnn"))]) == 3, rows
    assert any(r.startswith("| 4 x 7 x 8 |") for r in rows), rows  # B x (D+H) x U of tiny
    memory = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--steps", "8", "16"]
        + ["--batch", "4", "--checkpoint-every", "4", "--repeat", "1"]
        + ["--output", str(tmp_path / "MEMORY.md")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert memory.returncode == 0, memory.stderr[-2000:]
    report = (tmp_path / "MEMORY.md").read_text()
    assert "checkpoint_every=4: peak - imports (MB)" in report
    assert report.count("MB per time step") == 2


def run_script(name, args, timeout):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@needs_peers
def test_peers_equal_tf_gradrnn_in_float64():
    result = run_script("equality.py", ["--size", "tiny"], timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if ": y " in line]
    assert [line.split(":")[0] for line in lines] == [
        "jax autodiff",
        "jax by_hand",
        "torch autodiff",
        "torch by_hand",
    ]
    for line in lines:
        values = [float(v) for v in re.findall(r" (\d\.\de[+-]\d+)", line)]
        assert len(values) == 8, line  # y, the loss and six weight gradients
        assert max(values) < 1e-10, line


@needs_peers
def test_compare_quick_run_replaces_only_its_section(tmp_path):
    output = tmp_path / "RESULTS.md"
    output.write_text("# Results\n\nkept text\n")
    for _ in range(2):  # the second run replaces the first run's section
        result = run_script("compare.py", ["--quick", "--output", str(output)], timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = output.read_text()
    assert report.startswith("# Results\n\nkept text\n")
    assert report.count("<!-- compare.py: begin -->") == 1
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in report.splitlines()
        if line.startswith("| tiny")
    ]
    # Summary rows start with tf_gradrnn's best time, variant rows with the variant's name.
    summary = [row for row in rows if row[2][0].isdigit()]
    assert [row[1] for row in summary] == ["train", "infer"]
    variants = [row for row in rows if not row[2][0].isdigit()]
    assert len(variants) == 2 * 10, report  # 4 tf_gradrnn + 6 peer variants per mode
    for row in variants:
        assert float(row[3]) > 0 and float(row[5]) > 0, row
    assert "tiny: " in report.split("equal before timing")[1]


def test_prototypes_equal_the_library_and_are_timed():
    result = run_script("prototypes.py", ["--size", "tiny", "--rounds", "1", "--calls", "1"], 600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = next(line for line in result.stdout.splitlines() if line.startswith("float64"))
    values = [float(v) for v in re.findall(r" (\d\.\de[+-]\d+)", check)]
    assert len(values) == 6 and max(values) < 1e-12, check  # tiny: T = 5, no unroll 2
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows][:2] == ["library", "library, unroll=True"]
    assert all(float(row.split("|")[2]) > 0 for row in rows), rows


def test_threads_script_reports_each_setting():
    args = ["--size", "tiny", "--settings", "1,1", "2,1", "--rounds", "1", "--calls", "2"]
    result = run_script("threads.py", args, 600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row[0].strip() for row in rows[1:]] == ["1,1", "2,1"]
    assert all(float(cell) > 0 for row in rows[1:] for cell in row[1:]), rows


@needs_peers
def test_anatomy_times_both_frameworks_and_counts_loop_kernels(tmp_path):
    result = run_script("anatomy.py", ["--size", "tiny", "--rounds", "1", "--calls", "1"], 600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line.split("|")[1].strip() for line in result.stdout.splitlines() if "|" in line}
    assert {"train_on_batch", "JAX train step", "XLA call floor, JAX"} <= rows, rows
    result = run_script("anatomy.py", ["--size", "tiny", "--hlo", str(tmp_path)], 600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    loops = [line.split("|")[1:3] for line in result.stdout.splitlines() if "| tf_gradrnn" in line]
    assert sorted(loop.strip() for _, loop in loops) == ["backward", "forward"], loops
