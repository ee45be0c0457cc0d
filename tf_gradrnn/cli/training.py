"""Training runs for the command line: build, train (or resume) and finish a model.

`train` keeps its files in a run folder (`tf_gradrnn.cli.run_folder`: config, history, per-epoch
checkpoints, TensorBoard logs, the final model), from which an interrupted run resumes. Its
options are `tf_gradrnn.cli.options.TRAIN_OPTIONS`, as `config.json` records them.

The model trained is `{"x": (b, T, F), "mask": (b, T)} -> y (b, T, 1)`: the mask reaches the
`GradientRNN`, so a padded step keeps the previous state, and it weights the loss, so a
padded step does not count. `model.keras` holds the same layer without the mask input.
"""

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_gradrnn.callbacks import NonFiniteGuard
from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli.run_folder import (
    Recorder,
    RunError,
    atomic_write,
    best_epoch,
    checkpoint,
    load_checkpoint,
    load_model,
    read_history,
    stopped,
)
from tf_gradrnn.distributed_fit import distributed_fit
from tf_gradrnn.gradient_rnn import GradientRNN
from tf_gradrnn.losses import MaskedMeanSquaredError
from tf_gradrnn.serving import find_gradient_rnn


def build_layer(options: dict) -> GradientRNN:
    """`GradientRNN(units, hidden_units, activation, return_sequences=True)` from `options`."""
    try:
        return GradientRNN(
            options["units"],
            hidden_units=tuple(options["hidden_units"]),
            activation=options["activation"],
            return_sequences=True,
            name="gradient_rnn",
        )
    except ValueError as error:
        raise RunError(str(error)) from None


def wrap(layer: GradientRNN, features: int) -> tuple[keras.Model, keras.Model]:
    """The training model `{x, mask} -> y (b, T, 1)` and the model `x -> y (b, T)`, sharing
    `layer`'s weights."""
    x = keras.Input((None, features), name="x")
    mask = keras.Input((None,), dtype="bool", name="mask")
    training_model = keras.Model({"x": x, "mask": mask}, layer(x, mask=mask), name="training")
    x = keras.Input((None, features), name="x")
    y = keras.layers.Reshape((-1,), name="y")(layer(x))
    return training_model, keras.Model(x, y, name="gradient_rnn_model")


def compile_for_training(model: keras.Model, options: dict, optimizer=None) -> None:
    """MSE over the real steps: the weights are the mask, and the mean divides by their sum
    over the whole batch, across replicas under a distribution strategy.

    Adam clips the global gradient norm (`clip_norm`, 0 = no clipping): as in any RNN, a
    gradient through many steps can explode, and one such step can undo a whole run.
    """
    clip = {"global_clipnorm": options["clip_norm"]} if options.get("clip_norm") else {}
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(options["learning_rate"], **clip),
        loss=MaskedMeanSquaredError(),
        jit_compile=options["jit"],
    )


def find_layer(model: keras.Model, name: str = "the model") -> GradientRNN:
    """The model's one `GradientRNN` (`tf_gradrnn.serving.find_gradient_rnn`), which must
    return sequences."""
    try:
        layer = find_gradient_rnn(model)
    except (TypeError, ValueError) as error:
        raise RunError(f"{name}: {error}") from None
    if not layer.return_sequences:
        raise RunError(f"{name}: its GradientRNN must have return_sequences=True")
    return layer


def sequence_model(model: keras.Model, name: str = "the model") -> keras.Model:
    """`{x: (b, T, F), mask: (b, T)} -> (y: (b, T, 1), h: (b, units))`, `h` the state after
    each sequence's last real step, with the weights of `model`'s `GradientRNN`."""
    layer = find_layer(model, name)
    config = {**layer.get_config(), "return_sequences": True, "return_state": True}
    clone = GradientRNN.from_config(config)
    x = keras.Input((None, layer.cell.features), name="x")
    mask = keras.Input((None,), dtype="bool", name="mask")
    outputs = clone(x, mask=mask)
    clone.set_weights(layer.get_weights())
    return keras.Model({"x": x, "mask": mask}, outputs)


def check_features(model: keras.Model, data: data_lib.SequenceData, name: str) -> None:
    features = find_layer(model, name).cell.features
    if features != data.features:
        raise RunError(
            f"{name} expects {features} features per step, but {data.source} has "
            f"{data.features} ({', '.join(data.feature_names)})"
        )


def train(
    run_dir: Path,
    config: dict,
    data: data_lib.SequenceData,
    verbose=None,
    strategy: tf.distribute.Strategy | None = None,
    chief: bool = True,
) -> dict:
    """Trains (or resumes) the run in `run_dir`; returns a summary. See the module docstrings
    of this module and of `tf_gradrnn.cli.run_folder`.

    With a `strategy` (`tf_gradrnn.distributed_fit.strategy_from_name`), the model is created in
    its scope and trained by `distributed_fit`, without XLA. A worker that is not the
    `chief` reads `run_dir` (to resume) but writes its checkpoints to a scratch folder,
    deleted at the end, and no results: the chief writes the run folder.
    """
    if (run_dir / "model.keras").exists():
        raise RunError(f"{run_dir} is finished (it holds model.keras); nothing to resume")
    if data_lib.fingerprint(data) != config["data"]["sha256"]:
        raise RunError(f"the data at {config['data']['path']} changed since {run_dir} started")
    history = read_history(run_dir)
    done = len(history)
    keras.utils.set_random_seed(config["seed"])
    with (strategy or tf.distribute.get_strategy()).scope():
        if done:
            training_model = load_checkpoint(run_dir, history)
            layer = find_layer(training_model, "the checkpoint")
            compile_for_training(training_model, config, optimizer=training_model.optimizer)
        else:
            layer = build_layer(config)
            training_model, _ = wrap(layer, data.features)
            compile_for_training(training_model, config)

    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="tf-gradrnn-worker-"))
    try:
        _fit(training_model, config, data, history, write_dir, verbose, strategy)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    best = best_epoch(history)
    summary = {**history[(best or len(history)) - 1], "epochs_run": len(history)}
    if not chief:
        return {**summary, "best_epoch": best}
    if best:  # restore the weights of the epoch with the lowest validation loss
        layer.set_weights(find_layer(load_model(checkpoint(run_dir, best))).get_weights())
    if strategy:  # predict and save outside the strategy, with a plain copy of the layer
        weights = layer.get_weights()
        layer = GradientRNN.from_config(layer.get_config())
        training_model, _ = wrap(layer, data.features)
        layer.set_weights(weights)
    return {**summary, **_finish(run_dir, training_model, layer, data, config, history, best)}


def _fit(training_model, config, data, history, write_dir, verbose, strategy):
    """Trains for the epochs that `history` does not hold yet, unless early stopping ended."""
    done = len(history)
    if done >= config["epochs"] or stopped(history, config["patience"]):
        return
    train_idx, val_idx = data_lib.split(len(data.x), config["validation_split"], config["seed"])
    batch = config["batch_size"]
    arguments = {
        "epochs": config["epochs"],
        "steps_per_epoch": -(-len(train_idx) // batch),
        "initial_epoch": done,
        "validation_data": data_lib.evaluation_dataset(data, val_idx, batch)
        if len(val_idx)
        else None,
        "callbacks": [
            NonFiniteGuard(),  # a diverging run stops with an error, not NaN weights
            Recorder(write_dir, history, config["patience"]),
        ],
        "verbose": verbose if verbose is not None else (1 if sys.stdout.isatty() else 2),
    }
    dataset = data_lib.training_dataset(
        data, train_idx, batch, config["seed"], done, config["epochs"]
    )
    try:
        if strategy:
            distributed_fit(training_model, dataset, **arguments)
        else:
            training_model.fit(dataset, shuffle=False, **arguments)  # shuffled by epoch already
    except FloatingPointError:  # NonFiniteGuard's: history holds the epochs that ended
        raise _diverged(config, f"its loss became NaN or Inf in epoch {len(history) + 1}") from None


def _finish(run_dir, training_model, layer, data, config, history, best) -> dict:
    """Checks the predictions, plots, and writes `model.keras` last: it marks the run finished."""
    train_idx, val_idx = data_lib.split(len(data.x), config["validation_split"], config["seed"])
    shown, part = (val_idx, "validation") if len(val_idx) else (train_idx, "training")
    dataset = data_lib.evaluation_dataset(data, shown, config["batch_size"])
    y_pred = training_model.predict(dataset, verbose=0)[..., 0]
    y_true, mask = data.y[shown], data.mask[shown]
    with np.errstate(over="ignore", invalid="ignore"):  # float32, as training computes it
        loss = np.mean(np.square(y_pred - y_true)[mask])
    if not np.isfinite(loss):  # an epoch can end finite with absurd weights
        largest = np.max(np.abs(y_pred))
        raise _diverged(config, f"its {part} loss is {loss} (predictions up to {largest:.3g})")
    r2 = r_squared(y_true, y_pred, mask)
    plots = load_plots()
    if plots:
        curves = {key: [row[key] for row in history] for key in history[0] if key != "epoch"}
        atomic_write(run_dir / "loss.png", lambda tmp: plots.loss_curve(curves, tmp, run_dir.name))
        names = [data.ids[i] for i in shown]
        atomic_write(
            run_dir / "predictions.png",
            lambda tmp: plots.prediction_plot(
                y_true, y_pred, mask, tmp, format_r2(r2), title=part, names=names
            ),
        )
    _, model = wrap(layer, data.features)
    atomic_write(run_dir / "model.keras", model.save)
    return {"best_epoch": best, "r2": r2, "r2_on": part, "plotted": plots is not None}


def _diverged(config: dict, what: str) -> RunError:
    return RunError(
        f"training diverged: {what}; lower --learning-rate (it was {config['learning_rate']:g})"
    )


def r_squared(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """R^2 = 1 - sum((y_pred - y)^2) / sum((y - mean(y))^2) over the real steps (`mask`,
    default all) of `(n, T)` outputs; NaN when the truth is constant and R^2 is undefined."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    mask = np.ones(y_true.shape, bool) if mask is None else np.asarray(mask, bool)
    t, p = y_true[mask], y_pred[mask]
    spread = np.sum((t - t.mean()) ** 2)
    return float(1.0 - np.sum((p - t) ** 2) / spread) if spread > 0 else float("nan")


def format_r2(r2: float, digits: int = 4) -> str:
    """R^2 to `digits` decimals, or "n/a" when the truth is constant and R^2 is undefined."""
    return "n/a (constant target)" if np.isnan(r2) else f"{r2:.{digits}f}"


def load_plots():
    """`tf_gradrnn.cli.plots`; without matplotlib (the `cli` extra), None after a note."""
    try:
        return importlib.import_module("tf_gradrnn.cli.plots")
    except ImportError as error:
        if (error.name or "").split(".")[0] != "matplotlib":
            raise
        print('note: no plots without matplotlib: pip install "tf_gradrnn[cli]" draws them')
        return None
