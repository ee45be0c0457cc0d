"""The Hamiltonian and energy examples run as a user runs them, and check their own results."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, tmp_path, *args):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_hnn_example_two_body_conserves_energy_better_than_the_baseline(tmp_path):
    # The reduced two-body run (the example asserts its own result); the other reduced tasks
    # share its code and are left to `python examples/hnn.py --task all` to keep CI short.
    out = run_example("hnn.py", tmp_path, "--task", "two-body")
    assert "two_body energy, t in [0, 25] MSE, baseline / Hamiltonian:" in out
    for metric in ("train loss", "test loss", "energy, t in [0, 25]"):
        assert f"| two-body | {metric} |" in out
    assert not list(tmp_path.iterdir())  # no --plots, no files


def test_energy_forces_example_lowers_the_force_error(tmp_path):
    out = run_example("energy_forces.py", tmp_path)
    assert "force labels lower the held-out force error" in out
