"""Run-time checks of a request's inputs inside the exported graph, naming the input.

The signatures declare their input shapes (`x: (None, None, F)`, ...), which clients read from
the SignatureDef. A declared shape is not enforced by every caller: TF Serving's C++ session
feeds whatever the request holds, and functions loaded with `tf.saved_model.load` do not check
shapes either. So the graph checks them itself, before the recurrence runs.

These checks must not be foldable from the declared shape: TensorFlow turns `tf.rank(x)` into a
constant 3 when tracing, and Grappler does the same to a `Rank` op, so a rank check would always
pass and a (2, 5, 3, 1) request would fail deep in the loop. They read `tf.shape(x)`, whose
batch and time sizes are unknown, so it stays a run-time value.
"""

import tensorflow as tf


def checked_input(tensor: tf.Tensor, name: str, shape: tuple) -> tf.Tensor:
    """Checks `tensor`'s rank and fixed sizes against `shape` at run time, naming the input.

    `shape` has None for the free sizes: axis 0 is the batch, axis 1 of a 3-D input is time.
    Returns `tensor`, to be used only after the check. Names are not quoted: TensorFlow escapes
    quotes in assertion messages.
    """
    rank = len(shape)
    described = ", ".join(
        str(size) if size is not None else ("batch" if axis == 0 else "time")
        for axis, size in enumerate(shape)
    )
    # The sizes padded with -1 (no size is negative): a tensor of this rank has a size at
    # index rank - 1 and the padding at index rank.
    sizes = tf.concat([tf.shape(tensor), tf.fill([rank + 1], -1)], axis=0)
    fixed = [axis for axis, size in enumerate(shape) if size is not None]
    fits = tf.reduce_all(
        [
            tf.equal(sizes[rank], -1),
            tf.greater_equal(sizes[rank - 1], 0),
            tf.reduce_all(tf.equal(tf.gather(sizes, fixed), [shape[a] for a in fixed])),
        ]
    )
    check = tf.debugging.Assert(
        fits,
        [f"input {name} must have shape ({described}), got shape", tf.shape(tensor)],
        summarize=16,  # the whole received shape, not its first 3 sizes
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def same_batch(a: tf.Tensor, b: tf.Tensor, a_name: str, b_name: str):
    """Asserts that inputs `a` and `b` have the same batch size."""
    return tf.debugging.assert_equal(
        tf.shape(a)[0],
        tf.shape(b)[0],
        message=f"inputs {a_name} and {b_name} must have the same batch size",
    )
