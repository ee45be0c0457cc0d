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


@pytest.mark.parametrize("script", ["quickstart.py", "custom_potential.py", "teacher_student.py"])
def test_example_runs(script, tmp_path):
    run_script([str(ROOT / "examples" / script)], tmp_path)


def test_demo_trains_saves_plots_and_exports(tmp_path):
    # `tf-gradrnn demo`, the README's first command.
    out = run_script(
        ["-m", "tf_gradrnn.cli", "demo", "--output", str(tmp_path / "demo"), "--epochs", "30"],
        tmp_path,
    )
    assert "reloaded it: identical predictions" in out
    for name in ("student.keras", "loss.png", "predictions.png", "saved_model/1/saved_model.pb"):
        assert (tmp_path / "demo" / name).is_file(), name
        assert str(tmp_path / "demo" / name).rsplit("/saved_model.pb")[0] in out  # says where


def test_python_m_demo_takes_the_same_options(tmp_path, monkeypatch):
    # `python -m tf_gradrnn.cli.demo` runs demo.main: the same options reach the same run().
    from tf_gradrnn.cli import demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    args = ["--output", str(tmp_path), "--epochs", "3", "--no-jit", "--export-dir", "m"]
    assert demo.main(args) == 0
    assert calls == [((tmp_path,), {"epochs": 3, "jit_compile": False, "export_dir": Path("m")})]
