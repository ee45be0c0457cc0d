"""Per-sample value and input gradient of a scalar network, differentiable again.

This is the one place where the package opens an inner `tf.GradientTape`.
"""

from collections.abc import Callable

import tensorflow as tf


def per_sample_scalar(f: tf.Tensor, name: str = "potential") -> tf.Tensor:
    """Returns `f` as shape `(batch,)`, accepting `(batch,)` or `(batch, 1)`.

    Raises:
        ValueError: if `f` is not one floating-point scalar per sample.
    """
    if not f.dtype.is_floating:
        raise ValueError(f"The {name} must return floating-point values, got dtype {f.dtype.name}.")
    rank = f.shape.rank
    if rank == 2 and f.shape[-1] == 1:
        return tf.squeeze(f, axis=-1)
    if rank == 1:
        return f
    raise ValueError(
        f"The {name} must return one scalar per sample, shape (batch, 1) or (batch,); "
        f"got output shape {tuple(f.shape)}."
    )


def value_and_gradient(
    scalar_fn: Callable[[tf.Tensor], tf.Tensor],
    wrt: tf.Tensor,
    name: str = "potential",
    wrt_name: str = "input",
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
    computed outside its own context, so an enclosing tape records the backward pass too:
    differentiating `g` again (with respect to `wrt` or to the weights of `F`) gives the exact
    second-order terms.

    Args:
        scalar_fn: maps `wrt` to `(batch,)` or `(batch, 1)` values.
        wrt: `(batch, ...)` floating-point tensor.
        name: what `scalar_fn` is called in error messages.
        wrt_name: what `wrt` is called in error messages.

    Returns:
        `(f, g)` with `f: (batch,)` and `g` shaped like `wrt`.

    Raises:
        ValueError: if `scalar_fn` does not return one scalar per sample, or its value does
            not depend on `wrt` (the gradient would be undefined, not zero).
    """
    # A stateful RNN hands its state over as a Keras variable, which a tape cannot watch.
    wrt = tf.convert_to_tensor(wrt)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(wrt)
        f = per_sample_scalar(scalar_fn(wrt), name=name)
        total = tf.reduce_sum(f)
    g = tape.gradient(total, wrt)
    if g is None:
        raise ValueError(
            f"The {name}'s output does not depend on its {wrt_name}, so d{name}/d{wrt_name} "
            f"is undefined. Make the {name} use every input column."
        )
    if isinstance(g, tf.IndexedSlices):
        g = tf.convert_to_tensor(g)
    return f, g
