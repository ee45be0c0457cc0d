"""A training run's folder: its files, their atomic writes, and what resuming reads back.

    RUN/config.json                     options, data source and fingerprint (written first)
    RUN/.lock                           locked by the process training the run, while it runs
    RUN/history.csv                     epoch, loss[, val_loss]: one row per finished epoch
    RUN/checkpoints/epoch-NNNN.keras    the training model and its optimizer after each epoch
    RUN/logs/train, RUN/logs/validation TensorBoard scalars: epoch_loss per epoch
    RUN/model.keras                     the final model, x (b, T, F) -> y (b, T) (written last)
    RUN/loss.png, RUN/predictions.png

Every file is written to a hidden temporary name and renamed, so a crash never leaves a
half-written file. A run interrupted after epoch k resumes from `epoch-k.keras` and its first
k history rows; since each epoch's batch order depends only on the seed and the epoch number
(`data.training_dataset`), it ends with the history of an uninterrupted run. A damaged newest
checkpoint is skipped for the newest intact one (its epochs are trained again).
"""

import csv
import json
import math
import os
import sys
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import keras
import tensorflow as tf

from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli.data.sequence_data import numbered_features

# What resuming reads from config.json["data"]; the options are the caller's to name.
DATA_KEYS = ("path", "id_column", "time_column", "target_column", "feature_columns", "sha256")
LOCK = ".lock"  # held by `run_lock.locked`


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


def read_config(run_dir: Path, options: Iterable[str] = ()) -> dict:
    """RUN/config.json, which must hold `options` and the data keys resuming reads."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise RunError(f"{run_dir} holds no run (no config.json); start one with --data")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"cannot read {config_path}: {error}") from None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        raise RunError(f"{config_path}: no 'data' section; it is not a tf-gradrnn run's config")
    missing = [k for k in options if k not in config] + [k for k in DATA_KEYS if k not in data]
    if missing:
        raise RunError(
            f"{config_path}: no {', '.join(map(repr, missing))} (the file is damaged or was "
            "edited); restore it or start a new run"
        )
    return config


def read_history(run_dir: Path) -> list[dict]:
    """RUN/history.csv's rows: epoch (1, 2, ...), loss and, with validation, val_loss."""
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RunError(f"cannot read {path}: {error}") from None
    history = []
    for line, row in enumerate(rows, start=2):
        try:
            parsed = {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
        except (TypeError, ValueError):
            parsed = {}
        if parsed.get("epoch") != line - 1 or "loss" not in parsed or None in row:
            raise RunError(
                f"{path} line {line}: expected epoch {line - 1} and its losses, got "
                f"{','.join(map(str, row.values()))!r}; the file is damaged"
            )
        history.append(parsed)
    return history


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
    """The epoch (1-based) with the lowest finite validation loss (the first of equals); 0
    without validation, or when no validation loss is finite: NaN is never the best."""
    finite = [
        (row["val_loss"], row["epoch"])
        for row in history
        if "val_loss" in row and math.isfinite(row["val_loss"])
    ]
    return int(min(finite)[1]) if finite else 0


def stopped(history: list[dict], patience: int) -> bool:
    """Whether early stopping ended the run: `patience` epochs since the best, counted from
    the start when no epoch is best yet (0: never)."""
    validated = bool(history) and "val_loss" in history[0]
    return bool(patience and validated and len(history) - best_epoch(history) >= patience)


def load_model(path) -> keras.Model:
    """Loads a `.keras` model, turning every failure into a one-line `RunError`."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a folder; this needs a .keras model file")
    if not path.is_file():
        raise RunError(f"{path}: no such model file")
    # Keras reports a .keras file that is not a zip archive as "File not found".
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise RunError(f"{path}: not a valid .keras file (not a zip archive: empty or cut short)")
    try:
        return keras.saving.load_model(path)
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise RunError(f"cannot load {path}: {message}") from None


def load_checkpoint(run_dir: Path, history: list[dict]) -> keras.Model:
    """The training model of the newest checkpoint that loads; if it is not the one of the
    last epoch in `history`, warns on stderr and cuts `history` to its epoch."""
    problems = []
    for epoch in range(len(history), 0, -1):
        try:
            model = load_model(checkpoint(run_dir, epoch))
        except RunError as error:
            problems.append(str(error))
            continue
        if problems:
            print(
                f"warning: {problems[0]}; resuming from epoch {epoch}, the newest checkpoint "
                "that loads",
                file=sys.stderr,
            )
            del history[epoch:]
        return model
    problem = problems[0] if problems else f"{run_dir} has no finished epoch"
    raise RunError(f"{problem}; no earlier checkpoint loads: delete {run_dir} and start again")


def _scalar_metadata():
    # What TensorBoard's scalar summary writes; tf.summary.scalar itself needs the
    # tensorboard package, which this package does not depend on.
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = 1  # DATA_CLASS_SCALAR
    return metadata


class Recorder(keras.callbacks.Callback):
    """Checkpoints, history, TensorBoard scalars and early stopping, in the run folder."""

    def __init__(self, run_dir: Path, history: list[dict], patience: int):
        super().__init__()
        self.run_dir, self.history, self.patience = run_dir, history, patience
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
            "feature_names": data.feature_names if data.named else None,
            "sha256": data_lib.fingerprint(data),
        },
    }


def trained_features(model_path) -> list[str] | None:
    """The feature names of the data the model at `model_path` was trained on, from the
    config.json of its run folder (`RUN/model.keras`, `RUN/checkpoints/epoch-N.keras`); None
    outside a run folder or if that data named no features (`data.load`'s
    `expected_features`)."""
    folder = Path(model_path).parent
    folder = folder.parent if folder.name == "checkpoints" else folder
    config_path = folder / "config.json"
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"cannot read {config_path}: {error}") from None
    return features_of(config) if isinstance(config, dict) else None


def features_of(config: dict) -> list[str] | None:
    """The feature names a run's config.json records, None if its data named none."""
    data = config.get("data")
    names = data.get("feature_names") if isinstance(data, dict) else None
    if not names:
        return None
    # Older runs recorded made-up names, x1, x2, ..., for a file that names no features.
    if Path(data.get("path", "")).suffix != ".csv" and names == numbered_features(len(names)):
        return None
    return list(names)


def start(run_dir: Path, options: dict, data: data_lib.SequenceData, data_options: dict):
    """Creates `run_dir` with its `config.json`; raises RunError if it cannot."""
    if run_dir.exists() and (
        not run_dir.is_dir() or any(p.name != LOCK for p in run_dir.iterdir())
    ):
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
