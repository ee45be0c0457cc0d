"""The examples and the demo run as a user runs them, and check their own results."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(args, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_example_runs(script, tmp_path):
    run_script([str(ROOT / "examples" / script)], tmp_path)


def test_demo_trains_saves_and_reloads(tmp_path):
    out = run_script(
        ["-m", "tf_gradrnn.demo", "--output", str(tmp_path / "demo"), "--epochs", "30"], tmp_path
    )
    assert "reloaded it: identical predictions" in out
    assert (tmp_path / "demo" / "student.keras").is_file()
