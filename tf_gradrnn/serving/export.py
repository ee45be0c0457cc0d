"""SavedModel export in the versioned layout that TensorFlow Serving loads.

    <export_dir>/<version>/saved_model.pb
    <export_dir>/<version>/variables/
    <export_dir>/<version>/assets.extra/tf_serving_warmup_requests   (optional)

Signatures (batch and time sizes are free; F = features, H = units; dtype is the model's):

    serving_default   x (batch, time, F)                -> y (batch, time), h (batch, H),
                                                           h_seq (batch, time, H)   [h_0 = 0]
    sequence          x (batch, time, F), h0 (batch, H) -> y, h, h_seq as above
    step              x_t (batch, F), h (batch, H)      -> y_t (batch,), h_next (batch, H)
    metadata          (no inputs)                       -> feature_names (F,) string
                                                           [only with feature_names=...]

The input shapes are declared in the SignatureDefs, (None, None, F) for x, so `saved_model_cli
show` and TF Serving's model metadata report them; the graph also checks them when it runs
(`tf_gradrnn.serving.input_checks`), naming the input. Feeding `step` over t = 1..T from h = 0
reproduces `serving_default` exactly; T = 0 returns empty `y`, `h_seq` and the initial state.
For a layer with `go_backwards=True`, time runs backwards: `y` and `h_seq` come in processing
order, as Keras returns them, and a `step` client feeds x_T first.

The feature names are a signature rather than a file in `assets.extra/`, because TF Serving
clients see only signatures: the model metadata lists it, and a gRPC Predict call returns the
names (TF Serving's REST API cannot call a signature without inputs).
"""

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from tf_gradrnn._keras_internals import flatten_layers
from tf_gradrnn.gradient_rnn import GradientRNN
from tf_gradrnn.serving import versions
from tf_gradrnn.serving import warmup as warmup_lib
from tf_gradrnn.serving.input_checks import checked_input, same_batch
from tf_gradrnn.serving.signatures import METADATA_SIGNATURE

# Layers that only reshape or mask, which the serving signatures can leave out.
_SHAPE_ONLY_LAYERS = (keras.layers.InputLayer, keras.layers.Reshape, keras.layers.Flatten)


def find_gradient_rnn(model) -> GradientRNN:
    """Returns the one `GradientRNN` that `model` serves, or raises ValueError (TypeError if
    `model` is neither a layer nor a Keras model).

    `model` is a `GradientRNN` or a Keras model whose only weighted layer is one `GradientRNN`
    (reshaping layers around it are allowed: the signatures serve the recurrent layer itself).
    """
    layer = model if isinstance(model, GradientRNN) else _sole_gradient_rnn(model)
    if not layer.built:
        raise ValueError("The GradientRNN layer is not built: call it on data first.")
    return layer


def _sole_gradient_rnn(model) -> GradientRNN:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"expected a GradientRNN layer or a Keras model, got {type(model).__name__}."
        )
    layers = flatten_layers(model, include_self=False)
    found = [layer for layer in layers if isinstance(layer, GradientRNN)]
    inside = {id(inner) for rnn in found for inner in flatten_layers(rnn)}
    others = [
        layer
        for layer in layers
        if id(layer) not in inside and not isinstance(layer, (keras.Model, *_SHAPE_ONLY_LAYERS))
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected a model with exactly one GradientRNN layer, found {len(found)} in "
            f"'{model.name}'."
        )
    if others:
        names = ", ".join(f"'{layer.name}' ({type(layer).__name__})" for layer in others)
        raise ValueError(
            f"model '{model.name}' holds {names} besides its GradientRNN layer; only the "
            "GradientRNN (with reshaping layers around it) is served, so the others would be "
            "left out. Use the GradientRNN layer, or a model made of it alone."
        )
    return found[0]


def run_sequence(layer: GradientRNN, x: tf.Tensor, h0: tf.Tensor):
    """Runs `layer` over `x: (batch, time, F)` from `h0: (batch, H)`.

    Returns `y: (batch, time)`, `h: (batch, H)` (the last state, `h0` when time is 0) and
    `h_seq: (batch, time, H)`, in the layer's processing order.
    """
    y, (h_seq,) = layer.run_with_states(x, initial_state=h0)
    h = tf.concat([h0[:, None], h_seq], axis=1)[:, -1]  # also right for 0 steps
    return y[..., 0], h, h_seq


def _endpoints(layer: GradientRNN, jit_compile: bool, feature_names: list[str] | None):
    dtype = layer.cell.compute_dtype
    features, units = layer.cell.features, layer.units
    x_shape, h_shape, x_t_shape = (None, None, features), (None, units), (None, features)

    # The checks stay outside XLA, which drops run-time assertions.
    @tf.function(jit_compile=jit_compile)
    def sequence_compute(x, h0):
        y, h, h_seq = run_sequence(layer, x, h0)
        return {"y": y, "h": h, "h_seq": h_seq}

    @tf.function(jit_compile=jit_compile)
    def step_compute(x_t, h):
        y, (h_next,) = layer.cell(x_t, [h], training=False)
        return {"y_t": y[:, 0], "h_next": h_next}

    def sequence_or_empty(x, h0):
        # XLA compiles the loop body even for zero steps, and reading step 0 of an empty x
        # fails there, so T = 0 is answered outside the compiled function.
        batch = tf.shape(x)[0]
        empty = {
            "y": tf.zeros([batch, 0], dtype),
            "h": h0,
            "h_seq": tf.zeros([batch, 0, units], dtype),
        }
        return tf.cond(tf.shape(x)[1] > 0, lambda: sequence_compute(x, h0), lambda: empty)

    def serving_default(x):
        x = checked_input(x, "x", x_shape)
        return sequence_or_empty(x, tf.zeros([tf.shape(x)[0], units], dtype))

    def sequence(x, h0):
        x = checked_input(x, "x", x_shape)
        h0 = checked_input(h0, "h0", h_shape)
        with tf.control_dependencies([same_batch(x, h0, "x", "h0")]):
            return sequence_or_empty(tf.identity(x), h0)

    def step(x_t, h):
        x_t = checked_input(x_t, "x_t", x_t_shape)
        h = checked_input(h, "h", h_shape)
        with tf.control_dependencies([same_batch(x_t, h, "x_t", "h")]):
            return step_compute(tf.identity(x_t), h)

    def spec(name, shape):
        return tf.TensorSpec(shape, dtype, name=name)

    signatures = {
        "serving_default": (serving_default, [spec("x", x_shape)]),
        "sequence": (sequence, [spec("x", x_shape), spec("h0", h_shape)]),
        "step": (step, [spec("x_t", x_t_shape), spec("h", h_shape)]),
    }
    if feature_names is not None:
        signatures[METADATA_SIGNATURE] = (
            lambda: {"feature_names": tf.constant(feature_names, tf.string)},
            [],
        )
    endpoints = {}
    for name, (fn, input_signature) in signatures.items():
        endpoints[name] = tf.function(fn, input_signature=input_signature)
        endpoints[name].get_concrete_function()
    return endpoints


def _checked_feature_names(feature_names, features: int) -> list[str] | None:
    if feature_names is None:
        return None
    if isinstance(feature_names, str | bytes) or not isinstance(feature_names, Iterable):
        raise TypeError(f"feature_names must be a list of strings, got {feature_names!r}.")
    names = [str(name) if isinstance(name, str) else name for name in feature_names]
    if len(names) != features:
        raise ValueError(
            f"feature_names has {len(names)} names but the model takes {features} features."
        )
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature_names must be non-empty strings, got {name!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"feature_names repeats a name: {names}.")
    return names


def export_saved_model(
    model,
    export_dir: str | os.PathLike,
    version: int | None = None,
    jit_compile: bool = False,
    warmup: bool | None = None,
    feature_names: Sequence[str] | None = None,
) -> Path:
    """Writes `model` as version `version` of a TensorFlow Serving model folder.

    The SavedModel is written to a hidden temporary folder in `export_dir` and renamed to
    `<export_dir>/<version>` only once complete, so a crash mid-export leaves existing
    versions intact and TF Serving (which only loads numeric folder names) never sees a
    partial one. Everything the model needs, the inner gradient included, is in the graph:
    serving needs TensorFlow only, not this package. The version is readable by every user
    (folders 0755, files 0644), so a server running as another user can load it.

    Args:
        model: a `GradientRNN`, or a Keras model whose only weighted layer is one.
        export_dir: the model's base folder (TF Serving's `--model_base_path`), created if
            missing.
        version: a positive integer up to 2**63 - 1 (TF Serving reads versions as int64); by
            default 1 + the largest version in `export_dir`. An existing version is never
            overwritten.
        jit_compile: mark the signatures for XLA compilation. TF Serving compiles them only
            in builds with XLA enabled; the graph runs either way.
        warmup: write `assets.extra/tf_serving_warmup_requests`, so the first real request
            does not pay for graph initialization. It needs the `serving` extra
            (`tensorflow-serving-api`): `True` requires it, `None` writes the file when it is
            installed and warns when not, `False` skips it.
        feature_names: the names of the F features of x's last axis, in order; stored as the
            `metadata` signature (see the module docstring) and read back by
            `tf_gradrnn.serving.saved_feature_names`.

    Returns:
        The version folder, `<export_dir>/<version>`.

    Raises:
        FileExistsError: if that version exists. ValueError / TypeError for a bad model,
        version or feature names. ImportError if `warmup=True` without
        `tensorflow-serving-api`.
    """
    layer = find_gradient_rnn(model)
    feature_names = _checked_feature_names(feature_names, layer.cell.features)
    if version is not None:
        version = versions.checked_version(version)
    if warmup is None:
        warmup = warmup_lib.serving_api_available()
        if not warmup:
            warnings.warn(
                "tensorflow-serving-api is not installed, so the export has no TF Serving "
                'warm-up requests; pip install "tf_gradrnn[serving]" to add them.',
                stacklevel=2,
            )
    elif warmup:
        warmup_lib.prediction_log_pb2()  # fails before anything is written
    export_dir = Path(export_dir)
    versions.make_dirs_readable(export_dir)
    if version is None:
        version = versions.next_version(export_dir)
    target = export_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are never overwritten.")

    archive = keras.export.ExportArchive()
    archive.track(layer)
    for name, fn in _endpoints(layer, jit_compile, feature_names).items():
        archive.add_endpoint(name, fn)

    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir))
    try:
        archive.write_out(str(staging), verbose=False)
        if warmup:
            warmup_lib.write_warmup_requests(staging / warmup_lib.WARMUP_FILE, layer)
        versions.make_tree_readable(staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
