"""A training run's folder: its files, their atomic writes, and what resuming reads back.

    RUN/config.json                     options, data source and fingerprint (written first)
    RUN/history.csv                     epoch, loss[, val_loss]: one row per finished epoch
    RUN/checkpoints/epoch-NNNN.keras    the training model and its optimizer after each epoch
    RUN/logs/train, RUN/logs/validation TensorBoard scalars: epoch_loss per epoch
    RUN/model.keras                     the final model, x (b, T, F) -> y (b, T) (written last)
    RUN/loss.png, RUN/predictions.png

Every file is written to a hidden temporary name and renamed, so a crash never leaves a
half-written file. A run interrupted after epoch k resumes from `epoch-k.keras` and its first
k history rows; since each epoch's batch order depends only on the seed and the epoch number
(`data.training_dataset`), it ends with the history of an uninterrupted run.
"""

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_gradrnn.cli import data as data_lib


class RunError(ValueError):
    """A problem with a run folder or a model file; the message says which and why."""


def atomic_write(path: Path, write: Callable[[Path], object]):
    """Calls `write(tmp)` on a hidden name next to `path`, then renames it to `path`."""
    path = Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    try:
        result = write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


def read_config(run_dir: Path) -> dict:
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise RunError(f"{run_dir} holds no run (no config.json); start one with --data")
    try:
        return json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"cannot read {config_path}: {error}") from None


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()} for row in rows]


def _write_history(run_dir: Path, history: list[dict]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows({k: repr(v) for k, v in row.items()} for row in history)

    atomic_write(run_dir / "history.csv", write)


def checkpoint(run_dir: Path, epoch: int) -> Path:
    """The checkpoint written after `epoch` (1-based): `RUN/checkpoints/epoch-NNNN.keras`."""
    return run_dir / "checkpoints" / f"epoch-{epoch:04d}.keras"


def best_epoch(history: list[dict]) -> int:
    """The epoch (1-based) with the lowest validation loss, 0 without validation."""
    if not history or "val_loss" not in history[0]:
        return 0
    return int(history[int(np.argmin([row["val_loss"] for row in history]))]["epoch"])


def stopped(history: list[dict], patience: int) -> bool:
    """Whether early stopping ended the run: `patience` epochs since the best (0: never)."""
    best = best_epoch(history)
    return bool(patience and best and len(history) - best >= patience)


def _scalar_metadata():
    # What TensorBoard's scalar summary writes; tf.summary.scalar itself needs the
    # tensorboard package, which this package does not depend on.
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = 1  # DATA_CLASS_SCALAR
    return metadata


class Recorder(keras.callbacks.Callback):
    """Checkpoints, history, TensorBoard scalars and early stopping, in the run folder."""

    def __init__(self, run_dir: Path, history: list[dict], patience: int, crash_after=None):
        super().__init__()
        self.run_dir, self.history, self.patience = run_dir, history, patience
        self.crash_after = crash_after
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        self.writers = {}

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "loss": float(logs["loss"])}
        if "val_loss" in logs:
            row["val_loss"] = float(logs["val_loss"])
        # Checkpoint first: a crash between the two writes leaves a checkpoint that is ignored.
        atomic_write(checkpoint(self.run_dir, epoch + 1), self.model.save)
        self.history.append(row)
        _write_history(self.run_dir, self.history)
        for name, key in (("train", "loss"), ("validation", "val_loss")):
            if key in row:
                if name not in self.writers:
                    logdir = str(self.run_dir / "logs" / name)
                    self.writers[name] = tf.summary.create_file_writer(logdir)
                with self.writers[name].as_default():
                    tf.summary.write("epoch_loss", row[key], epoch + 1, _scalar_metadata())
                self.writers[name].flush()
        if self.crash_after == epoch + 1:  # tests: die as a killed process would
            os._exit(75)
        if stopped(self.history, self.patience):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


def run_config(options: dict, data: data_lib.SequenceData, data_options: dict) -> dict:
    """What `config.json` holds: the options, and where the data is and what it was."""
    return {
        **options,
        "data": {
            **data_options,
            "path": str(Path(data_options["path"]).resolve()),
            "sequences": len(data.x),
            "features": data.features,
            "feature_names": data.feature_names,
            "sha256": data_lib.fingerprint(data),
        },
    }


def start(run_dir: Path, options: dict, data: data_lib.SequenceData, data_options: dict):
    """Creates `run_dir` with its `config.json`; raises RunError if it cannot."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunError(
            f"{run_dir} already exists; resume it with --resume {run_dir}, or pick another --output"
        )
    config = run_config(options, data, data_options)
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(config, indent=2) + "\n"
        atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(text))
    except OSError as error:
        discard(run_dir, keep_folder=existed)
        raise RunError(f"cannot write the run folder {run_dir}: {error.strerror}") from None
    return config


def discard(run_dir: Path, keep_folder: bool = False) -> None:
    """Deletes a run that has nothing to resume: its files, and the folder unless kept."""
    if run_dir.is_dir():
        for path in sorted(run_dir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        if not keep_folder:
            run_dir.rmdir()
