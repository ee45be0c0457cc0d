"""Checks an exported version against the Keras model it came from, as the demo and the command
line do after every export."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def check_saved_model(
    path: str | Path, model: keras.Model, x: np.ndarray, tolerance: float = 1e-5
) -> float:
    """Reloads the SavedModel at `path` and compares it with `model` on `x`.

    Checks that `serving_default` gives `model`'s outputs (within `tolerance`) and that feeding
    `step` over the T steps of `x` from h = 0 reproduces them exactly.

    Args:
        path: a version folder, as `export_saved_model` returns.
        model: the exported Keras model, `x: (batch, time, F) -> y` with `batch * time` values
            (for example `(batch, time)` or `(batch, time, 1)`).
        x: `(batch, time, F)` inputs, of the model's dtype.
        tolerance: the largest difference from Keras allowed.

    Returns:
        The largest difference between `serving_default`'s `y` and the Keras model's outputs.

    Raises:
        RuntimeError: if the SavedModel differs from the Keras model, or `step` from
            `serving_default`.
    """
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    y = out["y"].numpy()
    expected = np.reshape(model.predict(x, verbose=0), y.shape)
    keras_diff = float(np.max(np.abs(y - expected), initial=0.0))
    h = tf.zeros_like(out["h"])
    for t in range(x.shape[1]):
        step = loaded.signatures["step"](x_t=tf.constant(x[:, t]), h=h)
        h = step["h_next"]
        if not np.array_equal(step["y_t"].numpy(), y[:, t]):
            raise RuntimeError(f"the step signature disagrees with serving_default at t={t}")
    if not keras_diff <= tolerance:
        raise RuntimeError(f"the SavedModel differs from the Keras model by {keras_diff:.3g}")
    return keras_diff
