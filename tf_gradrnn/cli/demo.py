"""The project's demo: fit a student gradient-state RNN to a known teacher, export and check it.

Run it with `tf-gradrnn demo` or `python -m tf_gradrnn.cli.demo` (options: `--output DIR`,
`--epochs N`, `--no-jit`, `--export-dir DIR`). It writes into `--output` (default `runs/demo`):
`student.keras`, `loss.png`, `predictions.png` and the SavedModel `saved_model/<version>`.
"""

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_gradrnn.cli import training
from tf_gradrnn.cli.parser import add_demo_arguments
from tf_gradrnn.cli.synthetic import teacher_sequences
from tf_gradrnn.gradient_rnn import GradientRNN
from tf_gradrnn.serving import check_saved_model, export_saved_model


def build_student(features: int, units: int, hidden_units=(16, 16)) -> keras.Model:
    """x: (batch, time, features) -> y: (batch, time)."""
    inputs = keras.Input((None, features), name="x")
    y = GradientRNN(units, hidden_units=hidden_units, return_sequences=True, name="gradient_rnn")(
        inputs
    )
    outputs = keras.layers.Reshape((-1,), name="y")(y)
    return keras.Model(inputs, outputs, name="student")


class EpochProgress(keras.callbacks.Callback):
    """Training progress in a few lines: on a terminal one line, rewritten after each epoch;
    elsewhere (a log, a pipe) a line after every tenth of the epochs and after the last."""

    def __init__(self, epochs: int, stream=None, lines: int = 10):
        super().__init__()
        self.epochs, self.stream = epochs, stream or sys.stdout
        self.every, self.width, self.start = -(-epochs // lines), 0, 0.0  # ceil

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = "  ".join(f"{key} {value:.4g}" for key, value in (logs or {}).items())
        seconds = time.perf_counter() - self.start
        line = f"epoch {epoch + 1}/{self.epochs}  {values}  ({seconds:.0f} s)"
        if self.stream.isatty():
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_train_end(self, logs=None):
        if self.stream.isatty():
            self.stream.write("\n")


def aligned_state_error(h_student: np.ndarray, h_teacher: np.ndarray) -> float:
    """Relative error of the student's states after the best orthogonal map onto the teacher's.

    States are identifiable only up to an orthogonal Q: F'(x, h) = F(x, Q h) gives the same
    outputs with states Q^T h. Q is the orthogonal Procrustes solution.
    """
    a = h_student.reshape(-1, h_student.shape[-1]).astype(np.float64)
    b = h_teacher.reshape(-1, h_teacher.shape[-1]).astype(np.float64)
    u, _, vt = np.linalg.svd(a.T @ b)
    residual = a @ (u @ vt) - b
    return float(np.linalg.norm(residual) / np.linalg.norm(b))


def run(
    output: Path,
    epochs: int = 60,
    n: int = 1024,
    steps: int = 25,
    seed: int = 0,
    jit_compile: bool = True,
    export_dir: Path | None = None,
) -> dict:
    """Generates data, trains, evaluates, saves, exports and reloads; returns the numbers."""
    keras.utils.set_random_seed(seed)
    output.mkdir(parents=True, exist_ok=True)
    data = teacher_sequences(n=n, steps=steps, features=3, units=4, seed=seed)
    split = int(0.8 * n)
    x_train, y_train = data.x[:split], data.y[:split]
    x_val, y_val = data.x[split:], data.y[split:]
    print(
        f"data: {n} teacher sequences of {steps} steps, 3 features, 4 state units "
        f"(train {split}, held out {n - split})"
    )

    model = build_student(features=3, units=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse", jit_compile=jit_compile)
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[EpochProgress(epochs)],
    )
    train_seconds = time.perf_counter() - start
    losses = history.history["loss"]
    print(
        f"train loss {losses[0]:.4g} -> {losses[-1]:.4g}; "
        f"validation loss {history.history['val_loss'][-1]:.4g} ({train_seconds:.1f} s)"
    )

    y_pred = model.predict(x_val, verbose=0)
    y_r2 = training.r_squared(y_val, y_pred)
    _, (student_states,) = model.get_layer("gradient_rnn").run_with_states(x_val)
    state_error = aligned_state_error(np.asarray(student_states), data.h[split:])
    print(
        f"held-out match to the teacher: outputs R^2 = {y_r2:.4f}, "
        f"states relative error (up to rotation) = {state_error:.3f}"
    )

    loss_png, predictions_png = output / "loss.png", output / "predictions.png"
    plots = training.load_plots()
    if plots:
        plots.loss_curve(history.history, loss_png, "student fitted to the teacher")
        r2_text = training.format_r2(y_r2)
        plots.prediction_plot(
            y_val, y_pred, None, predictions_png, r2_text, title="held-out sequences"
        )

    model_path = output / "student.keras"
    model.save(model_path)
    reloaded = keras.saving.load_model(model_path)
    reload_diff = float(np.max(np.abs(reloaded.predict(x_val, verbose=0) - y_pred)))
    if reload_diff != 0.0:
        raise RuntimeError(f"the reloaded model differs from the trained one by {reload_diff}")
    print(f"saved {model_path} and reloaded it: identical predictions")

    export_dir = export_dir or output / "saved_model"
    version_dir = export_saved_model(model, export_dir)
    export_diff = check_saved_model(version_dir, model, x_val[:8])
    print(
        f"exported the SavedModel for TF Serving to {version_dir}; reloaded it: "
        f"max |y - Keras| = {export_diff:.2g}, the step signature reproduces the sequence"
    )

    if not losses[-1] < 0.1 * losses[0]:
        raise RuntimeError(f"training did not converge: loss {losses[0]:.4g} -> {losses[-1]:.4g}")
    written = {model_path: "the trained Keras model"}
    if plots:
        written[loss_png] = "train and validation loss per epoch"
        written[predictions_png] = "held-out predictions against the teacher's outputs"
    written[version_dir] = "the SavedModel for TF Serving (one version folder)"
    width = max(len(str(path)) for path in written)
    print("wrote:\n" + "\n".join(f"  {str(p).ljust(width)}  {what}" for p, what in written.items()))
    return {
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "val_loss": history.history["val_loss"][-1],
        "y_r2": float(y_r2),
        "state_error": state_error,
        "model_path": str(model_path),
        "saved_model": str(version_dir),
        "plots": [str(loss_png), str(predictions_png)] if plots else [],
    }


def run_from_args(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    result = run(args.output, epochs=args.epochs, jit_compile=args.jit, export_dir=args.export_dir)
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_demo_arguments(parser)
    run_from_args(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    sys.exit(main())
