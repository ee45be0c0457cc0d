"""The examples and the demo run as a user runs them, and check their own results."""

import io
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
        [str(ROOT / "tf_gradrnn_launcher.py"), "demo", "--output", str(tmp_path / "demo")]
        + ["--epochs", "30"],
        tmp_path,
    )
    assert "reloaded it: identical predictions" in out
    for name in ("student.keras", "loss.png", "predictions.png", "saved_model/1/saved_model.pb"):
        assert (tmp_path / "demo" / name).is_file(), name
        assert str(tmp_path / "demo" / name).rsplit("/saved_model.pb")[0] in out  # says where
    # Its progress in ten lines (stdout is not a terminal here), and the summary last.
    progress = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in progress] == [f"{e}/30" for e in range(3, 31, 3)]
    assert out.splitlines()[-1].startswith("demo finished in")


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream", [io.StringIO, Terminal], ids=["log", "terminal"])
def test_demo_progress_takes_a_few_lines(stream):
    from tf_gradrnn.cli.demo import EpochProgress

    progress = EpochProgress(epochs=25, stream=stream())
    progress.on_train_begin()
    for epoch in range(25):
        progress.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 0.5})
    progress.on_train_end()
    text = progress.stream.getvalue()
    last = "epoch 25/25  loss 0.04  val_loss 0.5  (0 s)"
    if stream is Terminal:  # one line, rewritten: each epoch's text after a carriage return
        assert text.count("\n") == 1 and text.count("\r") == 25
        assert text.rsplit("\r", 1)[1].rstrip() == last
    else:  # a line after every ceil(25 / 10) = 3 epochs, and after the last
        lines = text.splitlines()
        assert [line.split()[1] for line in lines] == [f"{e}/25" for e in (*range(3, 25, 3), 25)]
        assert lines[-1] == last


def test_python_m_demo_takes_the_same_options(tmp_path, monkeypatch):
    # `python -m tf_gradrnn.cli.demo` runs demo.main: the same options reach the same run().
    from tf_gradrnn.cli import demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    args = ["--output", str(tmp_path), "--epochs", "3", "--no-jit", "--export-dir", "m"]
    assert demo.main(args) == 0
    assert calls == [((tmp_path,), {"epochs": 3, "jit_compile": False, "export_dir": Path("m")})]
