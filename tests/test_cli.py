"""The `tf-gradrnn` command end to end on tiny data, resume after a crash, and every user error.

End-to-end runs are subprocesses (`python -m tf_gradrnn.cli`), as a user runs the command. The
error cases fail before any training, so they call `cli.main` in this process: the same code
path, without paying TensorFlow's import for each; one subprocess checks the real stderr.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from tf_gradrnn.cli import commands as cli
from tf_gradrnn.cli import data as data_lib

N, T, D = 40, 10, 2
SMALL = ["--epochs", "3", "--batch-size", "8", "--units", "3", "--hidden-units", "8", "--no-jit"]
# TensorFlow's own C++ log lines, printed when it is imported, whatever the program.
TF_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following)")


def run_cli(*args, cwd, expect=0):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-m", "tf_gradrnn.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def sequences(n=N, seed=0):
    """Ragged sequences whose output needs memory: y_t = x_t[0] * x_{t-1}[1] + 0.3 x_t[1]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, D)).astype("float32")
    y = x[..., 0] * np.pad(x[:, :-1, 1], ((0, 0), (1, 0))) + 0.3 * x[..., 1]
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


def test_csv_run_killed_then_resumed_ends_like_the_uninterrupted_npz_run(npz_run, files):
    # The .csv holds the .npz's numbers, so an uninterrupted run on it would match npz_run.
    columns = ["--id-column", "id", "--time-column", "time", "--target-column", "target"]
    args = ["train", "--data", "data.csv", *columns, "--feature-columns", "u,v", *SMALL]
    run_cli(*args, "--crash-after-epoch", "1", cwd=files, expect=75)  # dies after epoch 1
    crashed = files / "runs" / "data"  # the default run folder: runs/<data name>
    assert len(history(crashed)) == 1 and not (crashed / "model.keras").exists()
    config = json.loads((crashed / "config.json").read_text())
    assert config["data"]["feature_columns"] == ["u", "v"]

    result = run_cli("train", "--resume", "runs/data", cwd=files)
    assert "resuming runs/data after epoch 1" in result.stdout
    assert "Epoch 2/3" in result.stdout and "Epoch 1/3" not in result.stdout
    run, _ = npz_run
    assert history(crashed) == history(run)
    weights = [keras.saving.load_model(r / "model.keras").get_weights() for r in (crashed, run)]
    for resumed, uninterrupted in zip(*weights, strict=True):
        np.testing.assert_array_equal(resumed, uninterrupted)


def test_train_tfrecord_folder_without_validation(files, tmp_path):
    run = tmp_path / "run"
    args = ["--data", files / "records", "--output", run, "--validation-split", "0"]
    result = run_cli("train", *args, *SMALL, cwd=tmp_path)
    assert "40 sequences from" in result.stdout
    assert list(history(run)[0]) == ["epoch", "loss"]
    assert (run / "model.keras").is_file() and not (run / "logs" / "validation").exists()


def test_predict_export_then_evaluate_inspect(npz_run, files, tmp_path, capsys):
    model = npz_run[0] / "model.keras"
    columns = ["--id-column", "id", "--time-column", "time", "--target-column", "target"]
    out = tmp_path / "out" / "predictions.csv"
    run_cli("predict", model, "--data", files / "data.csv", *columns, "--output", out, cwd=tmp_path)
    with open(out) as file:
        rows = list(csv.DictReader(file))
    _, _, lengths = sequences()
    assert len(rows) == lengths.sum()
    assert list(rows[0]) == ["id", "time", "y_pred", "h_1", "h_2", "h_3"]
    assert rows[0]["id"] == "seq0" and rows[lengths[0] - 1]["time"] == str(lengths[0] - 1)
    result = run_cli("export", model, "--output", tmp_path / "models" / "tiny", cwd=tmp_path)
    assert "models/tiny/1 and reloaded it" in result.stdout

    # The rest in this process. The .npz: y_pred at real steps, h the state after the last.
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
    assert cli.main(["evaluate", str(model), "--data", str(files / "data.npz")]) == 0
    assert re.search(r"mse [\d.e-]+ +rmse [\d.e-]+ +mae [\d.e-]+ +r2 ", capsys.readouterr().out)
    params = keras.saving.load_model(model).count_params()
    for path in (tmp_path / "models" / "tiny", model):
        assert cli.main(["inspect", str(path)]) == 0
        assert f"parameters: {params:,}" in capsys.readouterr().out
    assert cli.main(["inspect", str(tmp_path / "models" / "tiny" / "1")]) == 0
    text = capsys.readouterr().out
    for line in ("signature serving_default", "signature step", "input  x_t", "output h_next"):
        assert line in text


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


def test_a_user_error_in_a_real_process_is_one_line(tmp_path):
    result = run_cli("train", "--data", "missing.csv", cwd=tmp_path, expect=2)
    lines = [line for line in result.stderr.splitlines() if not TF_LOG.match(line)]
    assert lines == ["tf-gradrnn train: error: missing.csv: no such file or folder"]
    assert not any(tmp_path.iterdir())


# One test per mistake a user can make: exit status 2, one line naming the problem, nothing
# written. `call` runs the command in this process and returns (status, stderr lines).


@pytest.fixture
def call(capsys):
    def run(*args):
        status = cli.main([str(a) for a in args])
        err = capsys.readouterr().err.splitlines()
        assert not any("Traceback" in line for line in err)
        return status, err

    return run


def assert_one_line(result, *fragments):
    status, err = result
    assert status == 2 and len(err) == 1, err
    for fragment in fragments:
        assert fragment in err[0], err[0]


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
    assert_one_line(
        call("train", "--data", files / "data.npz", "--output", run), "already exists", "--resume"
    )
    assert_one_line(call("train", "--resume", run, "--units", "4"), "drop --units")
    assert_one_line(call("train", "--resume", run), "is finished")
    assert sorted(run.rglob("*")) == before


def test_error_bad_option_values(call, npz_run, files, tmp_path):
    data = ["--data", files / "data.npz", "--output", tmp_path / "run"]
    assert_one_line(call("train", *data, "--activation", "wiggly"), "wiggly")
    assert_one_line(call("train", *data, "--units", "0"), "--units", "must be positive")
    assert_one_line(
        call(
            "predict",
            files / "run" / "model.keras",
            "--data",
            files / "data.npz",
            "--output",
            tmp_path / "p.txt",
        ),
        ".npz or .csv",
    )
    assert not list(tmp_path.iterdir())


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(data_lib.DataError):
        cli.main(["train", "--data", str(tmp_path / "nope.csv"), "--debug"])


def test_a_failed_first_epoch_leaves_no_run_folder(call, files, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(cli.training, "train", explode)
    status, err = call("train", "--data", files / "data.npz", "--output", tmp_path / "run")
    assert status == 1 and err == [
        "tf-gradrnn train: error: MemoryError: out of memory (--debug shows the traceback)"
    ]
    assert not (tmp_path / "run").exists()
