"""The `tf-gradrnn` command end to end on tiny data, resume after a kill, and every user error.

A training run, its kill and its resumption, and a user error are subprocesses of
`tf_gradrnn_launcher.py`, the console command, as a user runs it. The rest call `cli.main` in
this process: the code the launcher runs once TensorFlow is imported, without paying that
import for each call.
"""

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import processes
import pytest

import tf_gradrnn
from tf_gradrnn.cli import commands as cli
from tf_gradrnn.cli import data as data_lib

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "tf_gradrnn_launcher.py"
N, T, D = 40, 10, 2
SMALL = ["--epochs", "3", "--batch-size", "8", "--units", "3", "--hidden-units", "8", "--no-jit"]
CSV_COLUMNS = ["--id-column", "id", "--time-column", "time", "--target-column", "target"]
# Without TF_CPP_MIN_LOG_LEVEL: quieting TensorFlow is the launcher's job.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
ENV["KERAS_BACKEND"] = "tensorflow"


def command(*args) -> list[str]:
    return [sys.executable, str(LAUNCHER), *map(str, args)]


def run_cli(*args, cwd, expect=0):
    result = subprocess.run(
        command(*args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def sequences(n=N, seed=0, features=D):
    """Ragged sequences whose output needs memory: y_t = x_t[0] * x_{t-1}[-1] + 0.3 x_t[-1]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, features)).astype("float32")
    y = x[..., 0] * np.pad(x[:, :-1, -1], ((0, 0), (1, 0))) + 0.3 * x[..., -1]
    lengths = rng.integers(4, T + 1, n)
    return x, y.astype("float32"), lengths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same data as .npz, .csv (custom column names) and a folder of TFRecord files."""
    folder = tmp_path_factory.mktemp("data")
    x, y, lengths = sequences()
    np.savez(folder / "data.npz", x=x, y=y, lengths=lengths)
    with open(folder / "data.csv", "w") as file:
        file.write("id,time,u,v,target\n")
        for i in range(N):
            for t in range(lengths[i]):
                file.write(f"seq{i},{t},{x[i, t, 0]},{x[i, t, 1]},{y[i, t]}\n")
    (folder / "records").mkdir()
    mask = np.arange(T) < lengths[:, None]
    data_lib.write_tfrecord(folder / "records" / "a.tfrecord", x[:25], y[:25], mask[:25])
    data_lib.write_tfrecord(folder / "records" / "b.tfrecord", x[25:], y[25:], mask[25:])
    return folder


@pytest.fixture(scope="module")
def npz_run(files):
    """An uninterrupted run: 3 epochs on the .npz."""
    result = run_cli("train", "--data", files / "data.npz", "--output", "run", *SMALL, cwd=files)
    return files / "run", result.stdout


def history(run):
    with open(run / "history.csv") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def csv_run(files):
    """The .npz run's numbers from the .csv: killed with SIGKILL once it has recorded an
    epoch, then resumed. Returns the run folder, the epochs done when killed, the stdout."""
    run = files / "csv_run"
    args = ["train", "--data", files / "data.csv", *CSV_COLUMNS, "--feature-columns", "u,v"]
    log = files / "killed.log"
    (code,) = processes.run_processes(
        [command(*args, "--output", run, *SMALL)],
        [ENV],
        [log],
        timeout=300,
        kill_when=lambda: (run / "history.csv").exists(),  # renamed into place, whole
    )
    assert code == -signal.SIGKILL, log.read_text()[-3000:]
    killed_after = len(history(run))
    assert 1 <= killed_after < 3 and not (run / "model.keras").exists()
    return run, killed_after, run_cli("train", "--resume", run, cwd=files).stdout


def test_train_npz_writes_the_run_folder(npz_run):
    run, stdout = npz_run
    for name in ("config.json", "history.csv", "model.keras", "loss.png", "predictions.png"):
        assert (run / name).is_file(), name
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == [
        "epoch-0001.keras",
        "epoch-0002.keras",
        "epoch-0003.keras",
    ]
    assert any((run / "logs" / "validation").iterdir())
    rows = history(run)
    assert [row["epoch"] for row in rows] == ["1", "2", "3"] and "val_loss" in rows[0]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert "run folder run" in stdout and "tf-gradrnn export run/model.keras" in stdout
    assert not list(run.rglob(".tmp-*"))


def test_csv_run_killed_then_resumed_ends_like_the_uninterrupted_npz_run(npz_run, csv_run):
    run, killed_after, stdout = csv_run
    assert json.loads((run / "config.json").read_text())["data"]["feature_columns"] == ["u", "v"]
    assert f"resuming {run} after epoch {killed_after}" in stdout
    assert f"Epoch {killed_after + 1}/3" in stdout and f"Epoch {killed_after}/3" not in stdout
    uninterrupted, _ = npz_run
    assert history(run) == history(uninterrupted)
    weights = [keras.saving.load_model(r / "model.keras").get_weights() for r in (run, npz_run[0])]
    for resumed, expected in zip(*weights, strict=True):
        np.testing.assert_array_equal(resumed, expected)


def test_train_tfrecord_folder_without_validation_into_the_default_folder(
    call, files, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = call("train", "--data", files / "records", "--validation-split", "0", *SMALL)
    run = tmp_path / "runs" / "records"  # the default run folder: runs/<data name>
    assert result.status == 0 and "40 sequences from" in result.out
    assert list(history(run)[0]) == ["epoch", "loss"]
    assert (run / "model.keras").is_file() and not (run / "logs" / "validation").exists()
    model = run / "model.keras"
    result = call("evaluate", model, "--data", files / "records", "--split", "validation")
    assert_one_line(result, "runs/records held out no sequences (validation split 0)")


def test_predict_export_then_evaluate_inspect(npz_run, csv_run, files, tmp_path, capsys):
    # The .csv run's model recorded the .csv's columns: predict needs no column flags.
    out = tmp_path / "out" / "predictions.csv"
    args = ["predict", csv_run[0] / "model.keras", "--data", files / "data.csv", "--output", out]
    assert cli.main([str(a) for a in args]) == 0
    with open(out) as file:
        rows = list(csv.DictReader(file))
    _, _, lengths = sequences()
    assert len(rows) == lengths.sum()
    assert list(rows[0]) == ["id", "time", "y_pred", "h_1", "h_2", "h_3"]
    assert rows[0]["id"] == "seq0" and rows[lengths[0] - 1]["time"] == str(lengths[0] - 1)

    # The .npz run has the same weights. Its .npz: y_pred at real steps, h after the last.
    model = npz_run[0] / "model.keras"
    p_npz = str(tmp_path / "p.npz")
    assert (
        cli.main(["predict", str(model), "--data", str(files / "data.npz"), "--output", p_npz]) == 0
    )
    with np.load(p_npz) as saved:
        assert saved["y_pred"].shape == (N, T) and saved["h"].shape == (N, 3)
        first = [float(r["y_pred"]) for r in rows[: lengths[0]]]
        np.testing.assert_allclose(saved["y_pred"][0, : lengths[0]], first, rtol=1e-5)
        h_csv = [float(rows[0][f"h_{k}"]) for k in (1, 2, 3)]
        np.testing.assert_allclose(saved["h"][0], h_csv, rtol=1e-5)
        assert np.all(saved["y_pred"][0, lengths[0] :] == 0)
    assert cli.main(["export", str(model), "--output", str(tmp_path / "models" / "tiny")]) == 0
    assert "models/tiny/1 and reloaded it" in capsys.readouterr().out
    params = keras.saving.load_model(model).count_params()
    for path in (tmp_path / "models" / "tiny", model):
        assert cli.main(["inspect", str(path)]) == 0
        assert f"parameters: {params:,}" in capsys.readouterr().out
    assert cli.main(["inspect", str(tmp_path / "models" / "tiny" / "1")]) == 0
    text = capsys.readouterr().out
    for line in ("signature serving_default", "signature step", "input  x_t", "output h_next"):
        assert line in text
    assert "features: not stored with the export" in text  # the .npz named no features

    # The .csv run trained on named columns: the export carries them, inspect shows them.
    named = tmp_path / "models" / "named"
    assert cli.main(["export", str(csv_run[0] / "model.keras"), "--output", str(named)]) == 0
    assert cli.main(["inspect", str(named / "1")]) == 0
    assert "features: u, v" in capsys.readouterr().out


def metrics(text: str) -> dict:
    line = text.splitlines()[-1]
    assert re.fullmatch(r"mse [\d.e-]+ +rmse [\d.e-]+ +mae [\d.e-]+ +r2 -?[\d.]+", line), line
    words = line.split()
    return {name: float(value) for name, value in zip(words[::2], words[1::2], strict=True)}


def test_evaluate_says_which_split_it_scored(npz_run, files, capsys):
    run, _ = npz_run
    args = ["evaluate", str(run / "model.keras"), "--data", str(files / "data.npz")]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    held_out = "(32 the run trained on; --split validation scores the 8 it held out)"
    assert f"scored: all 40 sequences {held_out}" in text
    assert cli.main([*args, "--split", "training"]) == 0
    assert "scored: the 32 training sequences of the run (" in capsys.readouterr().out
    assert cli.main([*args, "--split", "validation"]) == 0
    text = capsys.readouterr().out
    assert "scored: the 8 validation sequences of the run (" in text
    # The 8 validation sequences are one batch: the kept epoch's val_loss is their MSE.
    kept = min(float(row["val_loss"]) for row in history(run))
    np.testing.assert_allclose(metrics(text)["mse"], kept, rtol=1e-5)


def test_help_explains_every_flag_with_its_default(capsys):
    parser = cli.build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(verbs.choices) == ["demo", "evaluate", "export", "inspect", "predict", "train"]
    for verb, sub in verbs.choices.items():
        assert cli.main([verb, "--help"]) == 0
        text = capsys.readouterr().out
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or action.dest in ("help", "debug"):
                continue
            assert (action.option_strings or [action.dest])[0] in text, (verb, action)
            if action.option_strings:
                assert "(default: " in action.help or "required" in action.help, (verb, action)
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 8)", "(default: 32,32)", "(default: tanh)", "(default: 50)"):
        assert default in text
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"{tf_gradrnn.__version__}\n"


def test_help_version_and_usage_errors_import_no_tensorflow():
    script = (
        "import sys, tf_gradrnn_launcher\n"
        "argvs = [['--help'], ['--version'], ['train', '--help'], ['train', '--epoch', '5']]\n"
        "codes = [tf_gradrnn_launcher.main(argv) for argv in argvs]\n"
        "heavy = [m for m in ('tf_gradrnn', 'keras', 'tensorflow') if m in sys.modules]\n"
        "print(codes, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert result.stderr.splitlines()[-1] == "[0, 0, 0, 2] []", result.stderr
    assert f"\n{tf_gradrnn.__version__}\n" in result.stdout


def test_the_library_and_serving_import_no_cli_and_no_matplotlib():
    script = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "import tf_gradrnn, tf_gradrnn.serving\n"
        "print(sorted(m for m in sys.modules if m.startswith('tf_gradrnn.cli')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[]"


def test_a_user_error_in_a_real_process_is_one_line_without_tensorflow_log(tmp_path):
    result = run_cli("train", "--data", "missing.csv", cwd=tmp_path, expect=2)
    assert result.stderr.splitlines() == [
        "tf-gradrnn train: error: missing.csv: no such file or folder"
    ]
    assert not any(tmp_path.iterdir())


# One test per mistake a user can make: exit status 2, one line naming the problem, nothing
# written. `call` runs the command in this process.


class Result(NamedTuple):
    status: int
    err: list[str]  # stderr's lines
    out: str


@pytest.fixture
def call(capsys):
    def run(*args) -> Result:
        status = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Result(status, captured.err.splitlines(), captured.out)

    return run


def assert_one_line(result: Result, *fragments):
    assert result.status == 2 and len(result.err) == 1, result.err
    for fragment in fragments:
        assert fragment in result.err[0], result.err[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epoch", "5"], "unrecognized arguments: --epoch 5 (see tf-gradrnn train --help)"),
        (["--activation", "relu"], "relu is not twice differentiable: its second derivative"),
        (["--activation", "wiggly"], "'wiggly' is not one of the twice-differentiable"),
        (["--units", "0"], "argument --units: must be positive, got 0"),
        (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number"),
        (["--learning-rate", "inf"], "argument --learning-rate: must be a finite number"),
        (["--learning-rate", "-0.1"], "argument --learning-rate: must be positive, got -0.1"),
        (["--clip-norm", "nan"], "argument --clip-norm: must be a finite number, got nan"),
        (["--seed", "-1"], "argument --seed: must be from 0 to 4294967295, got -1"),
        (["--seed", str(2**40)], f"argument --seed: must be from 0 to 4294967295, got {2**40}"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_error_bad_training_option(flags, message, call, files, tmp_path):
    result = call("train", "--data", files / "data.npz", "--output", tmp_path / "run", *flags)
    assert_one_line(result, "tf-gradrnn train: error: ", message)
    assert not any(tmp_path.iterdir())


def test_error_missing_data_file(call, tmp_path):
    assert_one_line(
        call("train", "--data", tmp_path / "nope.npz", "--output", tmp_path / "run"),
        "nope.npz: no such file",
    )
    assert not (tmp_path / "run").exists()


def test_error_unreadable_data_file(call, tmp_path):
    (tmp_path / "data.npz").write_bytes(b"\x00 not a zip archive")
    assert_one_line(
        call("train", "--data", tmp_path / "data.npz", "--output", tmp_path / "run"),
        "cannot read",
        "data.npz",
    )
    assert not (tmp_path / "run").exists()


def test_error_wrong_columns(call, files, tmp_path):
    assert_one_line(
        call("train", "--data", files / "data.csv", "--output", tmp_path / "run"),
        "no target column 'y'",
        "columns: id, time, u, v, target",
        "--target-column",
    )
    assert not (tmp_path / "run").exists()


def test_error_nan_in_the_data(call, tmp_path):
    (tmp_path / "data.csv").write_text("sequence,step,a,y\ns,0,1.5,2\ns,1,NaN,3\n")
    assert_one_line(
        call("train", "--data", tmp_path / "data.csv", "--output", tmp_path / "run"),
        "line 3",
        "'a' is NaN",
    )
    assert not (tmp_path / "run").exists()


def test_error_inf_in_the_data(call, tmp_path):
    x, y, lengths = sequences(4)
    y[1, 2] = -np.inf
    np.savez(tmp_path / "data.npz", x=x, y=y, lengths=lengths)
    assert_one_line(
        call("evaluate", tmp_path / "m.keras", "--data", tmp_path / "data.npz"),
        "no such model file",
    )
    assert_one_line(
        call("train", "--data", tmp_path / "data.npz", "--output", tmp_path / "run"),
        "y holds NaN or Inf (first in sequence 1, step 2)",
    )
    assert not (tmp_path / "run").exists()


def test_error_model_feature_size_does_not_match_the_data(call, npz_run, tmp_path):
    run, _ = npz_run
    x, y, lengths = sequences(4)
    np.savez(tmp_path / "three.npz", x=np.concatenate([x, x[..., :1]], -1), y=y, lengths=lengths)
    out = tmp_path / "p.npz"
    result = call("predict", run / "model.keras", "--data", tmp_path / "three.npz", "--output", out)
    assert_one_line(result, "expects 2 features per step", "three.npz has 3 (x1, x2, x3)")
    assert not out.exists()


def test_error_unwritable_output_folder(call, npz_run, files, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    result = call("train", "--data", files / "data.npz", "--output", tmp_path / "file" / "run")
    assert_one_line(result, "cannot write the run folder", "file/run")
    out = tmp_path / "file" / "p.csv"
    result = call(
        "predict", files / "run" / "model.keras", "--data", files / "data.npz", "--output", out
    )
    assert_one_line(result, "file")
    result = call("export", files / "run" / "model.keras", "--output", tmp_path / "file" / "models")
    assert_one_line(result, "file")
    assert (tmp_path / "file").read_text() == "a file, not a folder"


def test_error_predict_onto_the_data_file(call, npz_run, files, tmp_path):
    data = tmp_path / "data.csv"
    shutil.copy(files / "data.csv", data)
    before = data.read_bytes()
    model = npz_run[0] / "model.keras"
    result = call("predict", model, "--data", data, *CSV_COLUMNS, "--output", data, "--overwrite")
    assert_one_line(result, f"--output {data} is the --data file")
    (tmp_path / "link.csv").symlink_to(data)
    result = call("predict", model, "--data", tmp_path / "link.csv", "--output", data)
    assert_one_line(result, "is the --data file")
    assert data.read_bytes() == before


def test_error_predict_over_an_existing_file_unless_overwrite(call, npz_run, files, tmp_path):
    out = tmp_path / "p.npz"
    out.write_text("earlier results")
    args = ["predict", npz_run[0] / "model.keras", "--data", files / "data.npz", "--output", out]
    assert_one_line(call(*args), f"--output {out} already exists; --overwrite replaces it")
    assert out.read_text() == "earlier results"
    assert call(*args, "--overwrite")[:2] == (0, [])
    with np.load(out) as saved:
        assert saved["y_pred"].shape == (N, T)


def test_error_split_of_other_data(call, npz_run, tmp_path):
    x, y, lengths = sequences(seed=1)
    np.savez(tmp_path / "other.npz", x=x, y=y, lengths=lengths)
    model = npz_run[0] / "model.keras"
    result = call("evaluate", model, "--data", tmp_path / "other.npz", "--split", "validation")
    assert_one_line(result, "--split validation needs the data", "other.npz holds other data")


def test_error_split_of_a_model_without_its_run(call, npz_run, files, tmp_path):
    shutil.copy(npz_run[0] / "model.keras", tmp_path / "model.keras")
    model, data = tmp_path / "model.keras", files / "data.npz"
    result = call("evaluate", model, "--data", data, "--split", "training")
    assert_one_line(result, "--split training needs the run", "holds no config.json")


def test_error_resume_a_folder_without_a_run(call, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line(call("train", "--resume", tmp_path / "empty"), "holds no run (no config.json)")
    assert_one_line(
        call("train", "--resume", tmp_path / "missing"), "holds no run (no such folder)"
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"] and not any(
        (tmp_path / "empty").iterdir()
    )


def test_error_existing_run_and_resume_with_options(call, npz_run, files):
    run, _ = npz_run
    before = sorted(run.rglob("*"))
    result = call("train", "--data", files / "data.npz", "--output", run)
    assert_one_line(result, "already exists and holds a finished run (model.keras)")
    assert "--resume" not in result.err[0]
    assert_one_line(call("train", "--resume", run, "--units", "4"), "drop --units")
    assert_one_line(call("train", "--resume", run), "is finished")
    assert sorted(run.rglob("*")) == before


def test_error_output_holds_an_unfinished_run(call, npz_run, files, tmp_path):
    (tmp_path / "run").mkdir()
    shutil.copy(npz_run[0] / "config.json", tmp_path / "run")
    result = call("train", "--data", files / "data.npz", "--output", tmp_path / "run")
    assert_one_line(result, "holds an unfinished run; resume it with --resume")


def test_error_output_holds_other_files(call, files, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = call("train", "--data", files / "data.npz", "--output", tmp_path / "run")
    assert_one_line(result, "holds no run (no config.json); pick another --output")
    assert "--resume" not in result.err[0]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "epochs, message",
    [("1", "its validation loss is "), ("2", "its loss became NaN or Inf in epoch 2")],
    ids=["final-check", "non-finite-guard"],
)
def test_error_diverging_learning_rate(epochs, message, call, files, tmp_path):
    args = ["--units", "3", "--hidden-units", "8", "--no-jit", "--learning-rate", "1e30"]
    result = call(
        "train",
        "--data",
        files / "data.npz",
        "--output",
        tmp_path / "run",
        *args,
        "--epochs",
        epochs,
    )
    assert_one_line(result, "training diverged: ", message, "lower --learning-rate (it was 1e+30)")
    assert not (tmp_path / "run" / "model.keras").exists()


def test_error_predict_output_neither_npz_nor_csv(call, npz_run, files, tmp_path):
    model, data = files / "run" / "model.keras", files / "data.npz"
    result = call("predict", model, "--data", data, "--output", tmp_path / "p.txt")
    assert_one_line(result, ".npz or .csv")
    assert not list(tmp_path.iterdir())


def test_train_without_matplotlib_skips_the_plots_and_says_how_to_get_them(
    call, files, tmp_path, monkeypatch
):
    for name in ("matplotlib", "matplotlib.figure"):  # as if matplotlib were not installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "tf_gradrnn.cli.plots", raising=False)
    run = tmp_path / "run"
    status, _, out = call("train", "--data", files / "data.npz", "--output", run, *SMALL)
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert status == 0 and notes == [
        'note: no plots without matplotlib: pip install "tf_gradrnn[cli]" draws them'
    ]
    assert (run / "model.keras").is_file() and not list(run.glob("*.png"))
    assert "  history.csv                loss per epoch" in out and "png" not in out


def test_counts_of_one_are_singular(call, tmp_path):
    x, y, lengths = sequences(n=10, features=1)
    np.savez(tmp_path / "one.npz", x=x, y=y, lengths=lengths)
    np.savez(tmp_path / "single.npz", x=x[:1], y=y[:1], lengths=lengths[:1])
    args = ["--output", tmp_path / "run", "--epochs", "1", "--units", "1", "--hidden-units", "4"]
    result = call("train", "--data", tmp_path / "one.npz", *args, "--no-jit")
    assert result.status == 0, result.err
    assert "10 sequences from" in result.out and "1 feature (x1)" in result.out
    assert "trained 1 epoch;" in result.out
    model, p = tmp_path / "run" / "model.keras", tmp_path / "p.npz"
    result = call("predict", model, "--data", tmp_path / "single.npz", "--output", p)
    assert "steps of 1 sequence and their final states h (1 unit)" in result.out


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(data_lib.DataError):
        cli.main(["train", "--data", str(tmp_path / "nope.csv"), "--debug"])


def test_a_failed_first_epoch_leaves_no_run_folder(call, files, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(cli.training, "train", explode)
    status, err, _ = call("train", "--data", files / "data.npz", "--output", tmp_path / "run")
    assert status == 1 and err == [
        "tf-gradrnn train: error: MemoryError: out of memory (--debug shows the traceback)"
    ]
    assert not (tmp_path / "run").exists()
