"""SavedModel export in the versioned layout that TensorFlow Serving loads.

    <export_dir>/<version>/saved_model.pb
    <export_dir>/<version>/variables/
    <export_dir>/<version>/assets.extra/tf_serving_warmup_requests   (optional)

Signatures (batch and time sizes are free; F = features, H = units; dtype is the model's):

    serving_default   x (batch, time, F)                -> y (batch, time), h (batch, H),
                                                           h_seq (batch, time, H)   [h_0 = 0]
    sequence          x (batch, time, F), h0 (batch, H) -> y, h, h_seq as above
    step              x_t (batch, F), h (batch, H)      -> y_t (batch,), h_next (batch, H)

Feeding `step` over t = 1..T from h = 0 reproduces `serving_default` exactly. For a layer with
`go_backwards=True`, time runs backwards: `y` and `h_seq` come in processing order, as Keras
returns them, and a `step` client feeds x_T first.
"""

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import keras
import tensorflow as tf

from tf_gradrnn._keras_internals import flatten_layers
from tf_gradrnn.gradient_rnn import GradientRNN

# Layers that only reshape or mask, which the serving signatures can leave out.
_SHAPE_ONLY_LAYERS = (keras.layers.InputLayer, keras.layers.Reshape, keras.layers.Flatten)
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def find_gradient_rnn(model) -> GradientRNN:
    """Returns the one `GradientRNN` that `model` serves, or raises ValueError.

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
            f"export expects a GradientRNN layer or a Keras model, got {type(model).__name__}."
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
            f"export needs a model with exactly one GradientRNN layer, found {len(found)} in "
            f"'{model.name}'."
        )
    if others:
        names = ", ".join(f"'{layer.name}' ({type(layer).__name__})" for layer in others)
        raise ValueError(
            f"export serves the GradientRNN layer itself, but model '{model.name}' also holds "
            f"{names}, which the signatures would leave out. Export the GradientRNN layer, or a "
            "model made of it alone."
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


def checked_input(tensor: tf.Tensor, name: str, shape: tuple) -> tf.Tensor:
    """Checks `tensor`'s rank and fixed sizes against `shape` at run time, naming the input.

    Names are not quoted: TensorFlow escapes quotes in assertion messages. The signatures
    declare inputs of unknown shape on purpose: with a declared rank, the graph
    optimizer folds a rank check into a constant, and a wrong-rank request then fails deep in
    the loop with an error that names no input. Returns `tensor` with its static shape set.
    """
    described = (
        "("
        + ", ".join(
            str(size) if size is not None else ("batch" if axis == 0 else "time")
            for axis, size in enumerate(shape)
        )
        + ")"
    )
    fixed_axes = [axis for axis, size in enumerate(shape) if size is not None]
    # Padded so that reading an axis beyond a wrong rank cannot fail before the check does.
    sizes = tf.concat([tf.shape(tensor), tf.fill([len(shape)], -1)], axis=0)
    fits = tf.logical_and(
        tf.equal(tf.rank(tensor), len(shape)),
        tf.reduce_all(tf.equal(tf.gather(sizes, fixed_axes), [shape[a] for a in fixed_axes])),
    )
    check = tf.debugging.Assert(
        fits, [f"input {name} must have shape {described}, got shape", tf.shape(tensor)]
    )
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(tensor), shape)


def same_batch(a: tf.Tensor, b: tf.Tensor, a_name: str, b_name: str):
    """Asserts that inputs `a` and `b` have the same batch size."""
    return tf.debugging.assert_equal(
        tf.shape(a)[0],
        tf.shape(b)[0],
        message=f"inputs {a_name} and {b_name} must have the same batch size",
    )


def _endpoints(layer: GradientRNN, jit_compile: bool):
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

    def serving_default(x):
        x = checked_input(x, "x", x_shape)
        return sequence_compute(x, tf.zeros([tf.shape(x)[0], units], dtype))

    def sequence(x, h0):
        x = checked_input(x, "x", x_shape)
        h0 = checked_input(h0, "h0", h_shape)
        with tf.control_dependencies([same_batch(x, h0, "x", "h0")]):
            return sequence_compute(tf.identity(x), h0)

    def step(x_t, h):
        x_t = checked_input(x_t, "x_t", x_t_shape)
        h = checked_input(h, "h", h_shape)
        with tf.control_dependencies([same_batch(x_t, h, "x_t", "h")]):
            return step_compute(tf.identity(x_t), h)

    def spec(name):
        return tf.TensorSpec(None, dtype, name=name)

    signatures = {
        "serving_default": (serving_default, [spec("x")]),
        "sequence": (sequence, [spec("x"), spec("h0")]),
        "step": (step, [spec("x_t"), spec("h")]),
    }
    endpoints = {}
    for name, (fn, input_signature) in signatures.items():
        endpoints[name] = tf.function(fn, input_signature=input_signature)
        endpoints[name].get_concrete_function()
    return endpoints


def write_warmup_requests(path: Path, layer: GradientRNN, batch: int = 2, steps: int = 4):
    """Writes TF Serving warm-up records: two `PredictionLog`s for each signature.

    TF Serving replays them when it loads the version, so graph initialization happens then,
    not on the first real request. Inputs are zeros and ones, of batch `batch`.
    """
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as error:
        raise ImportError(
            "Writing TF Serving warm-up requests needs tensorflow-serving-api: "
            'pip install "tf_gradrnn[serving]", or export with warmup=False.'
        ) from error
    from tf_gradrnn.serving import predict_request

    dtype = layer.cell.compute_dtype
    features, units = layer.cell.features, layer.units
    requests = []
    for fill in (0.0, 1.0):
        x = tf.fill([batch, steps, features], tf.constant(fill, dtype)).numpy()
        h = tf.fill([batch, units], tf.constant(fill, dtype)).numpy()
        requests += [
            predict_request({"x": x}, "serving_default"),
            predict_request({"x": x, "h0": h}, "sequence"),
            predict_request({"x_t": x[:, 0], "h": h}, "step"),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def serving_api_available() -> bool:
    """Whether `tensorflow-serving-api` (the `serving` extra) can be imported."""
    return importlib.util.find_spec("tensorflow_serving") is not None


def next_version(export_dir: Path) -> int:
    """1 + the largest numeric version folder in `export_dir` (1 when there is none)."""
    versions = [int(p.name) for p in export_dir.iterdir() if p.name.isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(
    model,
    export_dir: str | os.PathLike,
    version: int | None = None,
    jit_compile: bool = False,
    warmup: bool | None = None,
) -> Path:
    """Writes `model` as version `version` of a TensorFlow Serving model folder.

    The SavedModel is written to a hidden temporary folder in `export_dir` and renamed to
    `<export_dir>/<version>` only once complete, so a crash mid-export leaves existing
    versions intact and TF Serving (which only loads numeric folder names) never sees a
    partial one. Everything the model needs, the inner gradient included, is in the graph:
    serving needs TensorFlow only, not this package.

    Args:
        model: a `GradientRNN`, or a Keras model whose only weighted layer is one.
        export_dir: the model's base folder (TF Serving's `--model_base_path`), created if
            missing.
        version: a positive int; by default the next free one. An existing version is never
            overwritten.
        jit_compile: mark the signatures for XLA compilation. TF Serving compiles them only
            in builds with XLA enabled; the graph runs either way.
        warmup: write `assets.extra/tf_serving_warmup_requests`, so the first real request
            does not pay for graph initialization. It needs the `serving` extra
            (`tensorflow-serving-api`): `True` requires it, `None` writes the file when it is
            installed and warns when not, `False` skips it.

    Returns:
        The version folder, `<export_dir>/<version>`.

    Raises:
        FileExistsError: if that version exists. ValueError / TypeError for a bad model or
        version. ImportError if `warmup=True` without `tensorflow-serving-api`.
    """
    layer = find_gradient_rnn(model)
    if warmup is None:
        warmup = serving_api_available()
        if not warmup:
            warnings.warn(
                "tensorflow-serving-api is not installed, so the export has no TF Serving "
                'warm-up requests; pip install "tf_gradrnn[serving]" to add them.',
                stacklevel=2,
            )
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(export_dir)
    elif isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise ValueError(f"version must be a positive integer, got {version!r}.")
    target = export_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists; versions are never overwritten.")

    archive = keras.export.ExportArchive()
    archive.track(layer)
    endpoints = _endpoints(layer, jit_compile)
    for name, fn in endpoints.items():
        archive.add_endpoint(name, fn)

    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir))
    try:
        archive.write_out(str(staging), verbose=False)
        if warmup:
            write_warmup_requests(staging / WARMUP_FILE, layer)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
