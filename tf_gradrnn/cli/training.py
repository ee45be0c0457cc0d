"""Training runs for the command line: build, train (or resume) and finish a model.

`train` keeps its files in a run folder (`tf_gradrnn.cli.run_folder`: config, history, per-epoch
checkpoints, TensorBoard logs, the final model), from which an interrupted run resumes.

The model trained is `{"x": (b, T, F), "mask": (b, T)} -> y (b, T, 1)`: the mask reaches the
`GradientRNN`, so a padded step keeps the previous state, and it weights the loss, so a
padded step does not count. `model.keras` holds the same layer without the mask input.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tf_gradrnn.callbacks import NonFiniteGuard
from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import plots
from tf_gradrnn.cli.run_folder import (
    Recorder,
    RunError,
    atomic_write,
    best_epoch,
    checkpoint,
    read_history,
    stopped,
)
from tf_gradrnn.distributed_fit import distributed_fit
from tf_gradrnn.gradient_rnn import GradientRNN
from tf_gradrnn.losses import MaskedMeanSquaredError
from tf_gradrnn.serving import find_gradient_rnn

DEFAULTS = {
    "units": 8,
    "hidden_units": [32, 32],
    "activation": "tanh",
    "epochs": 50,
    "batch_size": 32,
    "learning_rate": 3e-3,
    "clip_norm": 1.0,
    "validation_split": 0.2,
    "patience": 10,
    "jit": True,
    "seed": 0,
}


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


def load_model(path) -> keras.Model:
    """Loads a `.keras` model, turning every failure into a one-line `RunError`."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a folder; this needs a .keras model file")
    if not path.is_file():
        raise RunError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path)
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise RunError(f"cannot load {path}: {message}") from None


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
    crash_after=None,
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
            training_model = load_model(checkpoint(run_dir, done))
            layer = find_layer(training_model, "the checkpoint")
            compile_for_training(training_model, config, optimizer=training_model.optimizer)
        else:
            layer = build_layer(config)
            training_model, _ = wrap(layer, data.features)
            compile_for_training(training_model, config)

    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="tf-gradrnn-worker-"))
    try:
        _fit(training_model, config, data, history, write_dir, crash_after, verbose, strategy)
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


def _fit(training_model, config, data, history, write_dir, crash_after, verbose, strategy):
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
            Recorder(write_dir, history, config["patience"], crash_after),
        ],
        "verbose": verbose if verbose is not None else (1 if sys.stdout.isatty() else 2),
    }
    dataset = data_lib.training_dataset(
        data, train_idx, batch, config["seed"], done, config["epochs"]
    )
    if strategy:
        distributed_fit(training_model, dataset, **arguments)
    else:
        training_model.fit(dataset, shuffle=False, **arguments)  # shuffled by epoch already


def _finish(run_dir, training_model, layer, data, config, history, best) -> dict:
    """Plots, and `model.keras` last: it marks the run finished."""
    train_idx, val_idx = data_lib.split(len(data.x), config["validation_split"], config["seed"])
    shown, part = (val_idx, "validation") if len(val_idx) else (train_idx, "training")
    dataset = data_lib.evaluation_dataset(data, shown, config["batch_size"])
    y_pred = training_model.predict(dataset, verbose=0)
    curves = {key: [row[key] for row in history] for key in history[0] if key != "epoch"}
    atomic_write(run_dir / "loss.png", lambda tmp: plots.loss_curve(curves, tmp, run_dir.name))
    names = [data.ids[i] for i in shown]
    r2 = atomic_write(
        run_dir / "predictions.png",
        lambda tmp: plots.prediction_plot(
            data.y[shown], y_pred[..., 0], data.mask[shown], tmp, title=part, names=names
        ),
    )
    _, model = wrap(layer, data.features)
    atomic_write(run_dir / "model.keras", model.save)
    return {"best_epoch": best, "r2": r2, "r2_on": part}
