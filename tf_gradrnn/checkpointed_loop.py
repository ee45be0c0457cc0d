"""A recurrence over time in chunks, each recomputed in the backward pass (checkpointing)."""

from collections.abc import Callable

import tensorflow as tf


def checkpointed_loop(
    run_chunk: Callable,
    sequences: tf.Tensor,
    initial_state: tf.Tensor,
    mask: tf.Tensor | None,
    every: int,
    weights: list,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs `run_chunk` over chunks of `every` steps and keeps only the states between them.

        (h_k, y_{k-every+1..k}) = run_chunk(x_{k-every+1..k}, h_{k-every}, mask, weights)

    Each chunk is wrapped in `tf.recompute_grad`: its intermediates are dropped after the
    forward pass and recomputed in the backward pass, so training keeps `T / every` states
    and one chunk's intermediates instead of all T steps', for one more forward pass.

    Args:
        run_chunk: `(x: (batch, k, features), h: (batch, units), mask: (batch, k) float or
            None, weights: list) -> (h, outputs: (batch, k, 1))`; it must read every weight it
            differentiates from `weights`, never from a variable.
        sequences: `(batch, T, features)` with T known.
        initial_state: `(batch, units)`.
        mask: optional `(batch, T)`, 1 for real steps, in the dtype of `sequences`.
        every: the chunk length k.
        weights: tensors passed to every chunk.

    Returns:
        `outputs: (batch, T, 1)` and the final state.
    """
    steps = sequences.shape[1]

    def chunk(x, h, *rest):
        chunk_mask = rest[0] if mask is not None else None
        chunk_weights = list(rest[1:] if mask is not None else rest)
        return run_chunk(x, h, chunk_mask, chunk_weights)

    # The state comes first: in a graph, tf.recompute_grad starts a chunk's recomputation
    # once the gradient of its *first* output exists. The outputs' gradient exists as soon as
    # the loss' does, for every chunk at once; the state's comes from the next chunk's
    # backward pass, so the chunks are recomputed one after the other. The weights are
    # arguments because tf.recompute_grad differentiates its arguments, and variables
    # captured inside a while loop's body cannot be.
    chunk = tf.recompute_grad(chunk)
    full = steps // every
    h, pieces = initial_state, []
    if full:
        # One while loop over the whole chunks, not a Python loop: the graph stays the same
        # size for any T, and the loop's backward pass visits the chunks in order.
        def by_chunk(values):  # (batch, full * k, ...) -> (full, batch, k, ...)
            shape = tf.concat([tf.shape(values)[:1], [full, every], tf.shape(values)[2:]], 0)
            values = tf.reshape(values[:, : full * every], shape)
            return tf.transpose(values, [1, 0, 2, *range(3, len(values.shape))])

        chunks = [by_chunk(sequences)] + ([] if mask is None else [by_chunk(mask)])

        def body(i, h, outputs):
            x, *extra = (c[i] for c in chunks)
            h, out = chunk(x, h, *extra, *weights)
            return i + 1, h, outputs.write(i, out)

        outputs = tf.TensorArray(sequences.dtype, size=full)
        _, h, outputs = tf.while_loop(
            lambda i, *_: i < full,
            body,
            (tf.constant(0), h, outputs),
            maximum_iterations=full,  # XLA needs the accumulators' size
        )
        outputs = outputs.stack()  # (full, batch, k, 1)
        pieces.append(tf.reshape(tf.transpose(outputs, [1, 0, 2, 3]), [-1, full * every, 1]))
    if steps % every:
        rest = slice(full * every, steps)
        extra = [] if mask is None else [mask[:, rest]]
        h, outputs = chunk(sequences[:, rest], h, *extra, *weights)
        pieces.append(outputs)
    return (tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]), h


def carry_last_unmasked(outputs: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Keras' masked outputs: a masked step repeats the last unmasked step's output (zeros
    before the first one). `outputs: (batch, time, n)` holds zeros at masked steps."""
    positions = tf.where(mask, tf.range(tf.shape(mask)[1])[None, :], -1)
    # The running maximum over time: the last unmasked step so far, -1 before any.
    last = tf.transpose(tf.scan(tf.maximum, tf.transpose(positions)))
    carried = tf.gather(outputs, tf.maximum(last, 0), axis=1, batch_dims=1)
    return tf.where((last >= 0)[..., None], carried, tf.zeros_like(carried))
