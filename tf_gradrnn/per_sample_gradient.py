"""`value_and_gradient`: the per-sample value and input gradient of a scalar function,
differentiable again, and the checks of what it is given and what the function returns.

This is the one place where the package opens an inner `tf.GradientTape`; `ScalarGradient`
and the cells are built on it.
"""

from collections.abc import Callable
from typing import NoReturn

import keras
import tensorflow as tf

from tf_gradrnn._keras_internals import flatten_layers

# Layers whose output for one sample depends on other samples of the batch. The batch-sum
# trick behind the per-sample gradient (see `value_and_gradient`) is wrong for them.
_SAMPLE_MIXING_LAYERS = (keras.layers.BatchNormalization,)


def _message(owner: str | None, text: str) -> str:
    """Returns `owner: text`, naming who raised it (`text` capitalized without an owner)."""
    return f"{owner}: {text}" if owner else text[:1].upper() + text[1:]


def _fail(owner: str | None, text: str, error: type[Exception] = ValueError) -> NoReturn:
    raise error(_message(owner, text))


def per_sample_scalar(f, name: str = "potential", owner: str | None = None, wrt=None):
    """Returns `f` as shape `(batch,)`, accepting `(batch,)` or `(batch, 1)`, checked to hold
    one value per sample of `wrt` (if given; when the graph runs if the batch is unknown).

    Raises:
        ValueError: if `f` is not one floating-point tensor of one scalar per sample; the
            message starts with `owner` (who calls: a class), if given.
    """
    must = f"the {name} must return"
    if isinstance(f, (list, tuple, dict)):
        _fail(
            owner,
            f"{must} one tensor, got a {type(f).__name__} of {len(f)} (a keras.Model built "
            "with outputs=[x] returns a list: give outputs=x).",
        )
    f = tf.convert_to_tensor(f)
    if not f.dtype.is_floating:
        _fail(owner, f"{must} floating-point values, got dtype {f.dtype.name}.")
    if f.shape.rank == 2 and f.shape[-1] == 1:
        f = tf.squeeze(f, axis=-1)
    if f.shape.rank != 1:
        shape = "<unknown>" if f.shape.rank is None else tuple(f.shape)
        _fail(
            owner,
            f"{must} one scalar per sample, shape (batch, 1) or (batch,); got output shape "
            f"{shape}.",
        )
    if wrt is None:
        return f
    values, samples = f.shape[0], wrt.shape[0]
    if values is not None and samples is not None:
        if values != samples:
            _fail(
                owner, f"{must} one scalar per sample: {samples} samples in, {values} values out."
            )
        return f
    check = tf.debugging.assert_equal(  # XLA leaves assertions out
        tf.shape(f)[0], tf.shape(wrt)[0], message=_message(owner, f"{must} one scalar per sample")
    )
    with tf.control_dependencies([check]):
        return tf.identity(f)


def check_per_sample(network: keras.layers.Layer, name: str = "network", owner=None) -> None:
    """Raises ValueError if `network` holds a layer known to mix the samples of a batch."""
    for layer in flatten_layers(network):
        if isinstance(layer, _SAMPLE_MIXING_LAYERS):
            _fail(
                owner,
                f"the {name} contains {type(layer).__name__} layer '{layer.name}', which "
                "mixes samples of a batch in training mode; its per-sample input gradient "
                "would then be wrong. Use LayerNormalization or no normalization instead.",
            )


def check_differentiable(x, what: str, owner: str | None = None) -> None:
    """Raises TypeError unless `x` is a dense floating-point tensor (`what`: its name)."""
    if isinstance(x, tf.RaggedTensor):
        _fail(
            owner,
            f"the {what} must be a dense tensor, got a tf.RaggedTensor. Its rows are "
            "independent samples: pass its .flat_values (or pad it with .to_tensor()).",
            TypeError,
        )
    if isinstance(x, tf.SparseTensor):
        _fail(
            owner,
            f"the {what} must be a dense tensor, got a tf.SparseTensor; convert it with "
            "tf.sparse.to_dense.",
            TypeError,
        )
    if not tf.as_dtype(x.dtype).is_floating:
        _fail(
            owner,
            f"the {what} must be floating point (the gradient is taken with respect to it), "
            f"got dtype {tf.as_dtype(x.dtype).name}.",
            TypeError,
        )


def value_and_gradient(
    scalar_fn: Callable[[tf.Tensor], tf.Tensor],
    wrt: tf.Tensor,
    name: str = "potential",
    wrt_name: str = "input",
    second_order: bool = True,
    owner: str = "value_and_gradient",
) -> tuple[tf.Tensor, tf.Tensor]:
    """Evaluates `f = F(wrt)` and `g = dF/dwrt`, one gradient per sample.

        f_i = F(wrt_i)                 f: (batch,)
        g_i = dF/dwrt (wrt_i)          g: same shape as wrt, (batch, ...)

    The gradient is taken of `sum_i f_i`. Since `d(sum_j f_j)/dwrt_i = df_i/dwrt_i + sum_{j!=i}
    df_j/dwrt_i` and `f_j` does not depend on `wrt_i` for `j != i`, this is exactly the
    per-sample gradient, in one backward pass instead of `batch` of them. It stops being true
    when `F` mixes samples (BatchNormalization in training mode, attention over the batch):
    the result is then the gradient of the batch sum, not of each sample's value.

    The inner tape watches only `wrt` (no variables) and is not persistent. Its gradient is
    computed outside its own context, so an enclosing tape records the backward pass too.

    With `second_order=True`, differentiating `g` again (with respect to `wrt`, to anything
    `wrt` was computed from, or to the weights theta of `F`) gives the exact second-order terms
    `d2F/dwrt2` and `d2F/dwrt dtheta`.

    With `second_order=False`, `g` is returned through `tf.stop_gradient`: an enclosing tape
    treats it as a constant equal to its value. For a loss `L(f, g, ...)` the gradient becomes

        dL/dtheta = dL/df * df/dtheta           (the term dL/dg * dg/dtheta is dropped)
        dL/dwrt   = dL/df * df/dwrt             (the term dL/dg * d2F/dwrt2 is dropped)

    i.e. exactly the gradient of the same loss with `g` replaced by a precomputed constant.
    `f` is unaffected. A loss that reaches the weights only through `g` (a force loss, the
    time derivative of a Hamiltonian network) then gets no gradient at all (`None`), and a
    recurrence `h_t = g(h_{t-1})` is cut at every step. It saves the second backward pass,
    never changes the forward values.

    Args:
        scalar_fn: maps `wrt` to `(batch,)` or `(batch, 1)` values.
        wrt: `(batch, ...)` floating-point tensor.
        name: what `scalar_fn` is called in error messages.
        wrt_name: what `wrt` is called in error messages.
        second_order: whether enclosing tapes differentiate through `g` (see above).
        owner: who calls (a class), named first in every error message.

    Returns:
        `(f, g)` with `f: (batch,)` and `g` shaped like `wrt`.

    Raises:
        TypeError: if `wrt` is ragged, sparse, or not floating point.
        ValueError: if `scalar_fn` does not return one tensor of one scalar per sample, or
            its value does not depend on `wrt` (the gradient would be undefined, not zero).
    """
    if not isinstance(wrt, (tf.RaggedTensor, tf.SparseTensor)):
        # A stateful RNN hands its state over as a Keras variable, which a tape cannot watch.
        wrt = tf.convert_to_tensor(wrt)
    check_differentiable(wrt, wrt_name, owner)
    if wrt.shape.rank == 0:
        _fail(owner, f"the {wrt_name} must have a batch axis, got a scalar.")
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(wrt)
        f = per_sample_scalar(scalar_fn(wrt), name=name, owner=owner, wrt=wrt)
        total = tf.reduce_sum(f)
    g = tape.gradient(total, wrt)
    if g is None:
        _fail(
            owner,
            f"the {name}'s output does not depend on its {wrt_name}, so d{name}/d{wrt_name} "
            f"is undefined. Make the {name} use every input column.",
        )
    if isinstance(g, tf.IndexedSlices):
        g = tf.convert_to_tensor(g)
    if not second_order:
        g = tf.stop_gradient(g)
    return f, g
