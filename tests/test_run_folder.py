"""A run folder: its config and history read back, the best epoch, damaged checkpoints, the
features its model was trained on, and the lock that keeps a second process out."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import run_folder, run_lock, training
from tf_gradrnn.cli.run_folder import RunError

NAN = float("nan")


def rows(val_losses):
    return [{"epoch": e, "loss": 1.0, "val_loss": v} for e, v in enumerate(val_losses, 1)]


def refused(call, *messages):
    with pytest.raises(RunError) as error:
        call()
    text = str(error.value)
    assert all(m in text for m in messages) and "\n" not in text, text


def test_a_nan_validation_loss_is_never_the_best():
    assert run_folder.best_epoch(rows([0.5, NAN, 0.4])) == 3
    assert run_folder.best_epoch(rows([0.5, NAN, NAN])) == 1
    assert run_folder.best_epoch(rows([NAN, NAN])) == 0
    assert run_folder.best_epoch([{"epoch": 1, "loss": 1.0}]) == 0  # no validation
    # Patience counts from the best finite epoch, or from the start if there is none.
    assert run_folder.stopped(rows([0.5, NAN, NAN]), patience=2)
    assert run_folder.stopped(rows([NAN, NAN]), patience=2)
    assert not run_folder.stopped(rows([0.5, NAN, 0.4]), patience=2)


def test_a_history_holding_text_is_refused_naming_the_line(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n2,oops\n")
    refused(
        lambda: run_folder.read_history(tmp_path),
        f"{tmp_path / 'history.csv'} line 3: expected epoch 2 and its losses, got '2,oops'",
    )
    (tmp_path / "history.csv").write_text("epoch,loss\n1,0.5\n3,0.4\n")
    refused(lambda: run_folder.read_history(tmp_path), "line 3: expected epoch 2")


def test_a_config_missing_a_key_is_refused_naming_it(tmp_path):
    data = {key: "?" for key in run_folder.DATA_KEYS}
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3, "data": data}))
    assert run_folder.read_config(tmp_path, ["epochs"])["epochs"] == 3
    refused(
        lambda: run_folder.read_config(tmp_path, ["epochs", "batch_size"]),
        f"{tmp_path / 'config.json'}: no 'batch_size'",
    )
    del data["sha256"]
    (tmp_path / "config.json").write_text(json.dumps({"epochs": 3, "data": data}))
    refused(lambda: run_folder.read_config(tmp_path), "config.json: no 'sha256'")


def save_model(path, seed):
    layer = training.build_layer({"units": 2, "hidden_units": [4], "activation": "tanh"})
    training_model, _ = training.wrap(layer, 2)
    training_model.set_weights(
        [np.full(w.shape, seed, w.dtype) for w in training_model.get_weights()]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    training_model.save(path)


def test_an_empty_or_cut_keras_file_is_not_valid(tmp_path):
    (tmp_path / "empty.keras").write_bytes(b"")
    refused(
        lambda: run_folder.load_model(tmp_path / "empty.keras"),
        f"{tmp_path / 'empty.keras'}: not a valid .keras file",
    )
    save_model(tmp_path / "whole.keras", 1)
    whole = (tmp_path / "whole.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(whole[: len(whole) // 2])
    refused(lambda: run_folder.load_model(tmp_path / "cut.keras"), "not a valid .keras file")


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, capsys):
    for epoch in (1, 2, 3):
        save_model(run_folder.checkpoint(tmp_path, epoch), seed=epoch)
    newest = run_folder.checkpoint(tmp_path, 3)
    newest.write_bytes(newest.read_bytes()[:100])
    history = rows([0.5, 0.4, 0.3])
    model = run_folder.load_checkpoint(tmp_path, history)
    assert all(np.all(w == 2) for w in model.get_weights())
    assert history == rows([0.5, 0.4])  # epoch 3 is trained again
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {newest}: not a valid .keras file")
    assert "resuming from epoch 2" in err[0]
    for epoch in (1, 2):
        run_folder.checkpoint(tmp_path, epoch).write_bytes(b"")
    refused(
        lambda: run_folder.load_checkpoint(tmp_path, rows([0.5, 0.4])),
        "epoch-0002.keras: not a valid .keras file",
        f"no earlier checkpoint loads: delete {tmp_path} and start again",
    )


def test_the_features_a_model_was_trained_on_come_from_its_run(tmp_path):
    x = np.zeros((2, 3, 2), "float32")
    named = data_lib.SequenceData(x, x[..., 0], x[..., 0] == 0, ["a", "b"], [], ["u", "v"], "d")
    options = {"path": "data.csv", **{k: None for k in run_folder.DATA_KEYS[1:5]}}
    config = run_folder.start(tmp_path / "run", {}, named, options)
    assert config["data"]["feature_names"] == ["u", "v"]
    for model in ("model.keras", "checkpoints/epoch-0001.keras"):
        assert run_folder.trained_features(tmp_path / "run" / model) == ["u", "v"]
    assert run_folder.trained_features(tmp_path / "elsewhere" / "model.keras") is None
    unnamed = named._replace(feature_names=["x1", "x2"], named=False)
    config = run_folder.run_config({}, unnamed, {**options, "path": "data.npz"})
    assert config["data"]["feature_names"] is None
    # Older runs recorded made-up names for files that name no features.
    legacy = {"data": {"path": "/data.npz", "feature_names": ["x1", "x2"]}}
    assert run_folder.features_of(legacy) is None


def test_a_second_lock_on_a_run_is_refused(tmp_path):
    with run_lock.locked(tmp_path):
        refused(
            lambda: run_lock.locked(tmp_path).__enter__(),
            f"{tmp_path} is in use by another tf-gradrnn process",
        )
    assert not (tmp_path / ".lock").exists()  # released and gone
    with run_lock.locked(tmp_path):  # and free again
        pass


HOLD = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_a_lock_held_by_another_process_refuses_until_that_process_dies(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        refused(lambda: run_lock.locked(tmp_path).__enter__(), f"{tmp_path} is in use")
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left by the killed process: stale, not locked
    with run_lock.locked(tmp_path):
        assert os.path.exists(tmp_path / ".lock")
