"""A masked mean squared error that stays exact under `tf.distribute`."""

import keras
import tensorflow as tf
from keras import ops

from tf_gradrnn._keras_internals import keras_mask


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class MaskedMeanSquaredError(keras.losses.Loss):
    """Mean squared error over the real steps of the whole global batch.

        loss = sum_{i,t} w_it * mean_k (y_pred_itk - y_true_itk)^2 / sum_{i,t} w_it

    with `w` the sample weight, typically the padding mask `(batch, T)` as 0/1; without one,
    every entry counts once. A weight covers the entries that follow its axes: a `(batch,)`
    weight weights the mean over a whole sequence. On one device this is Keras'
    `MeanSquaredError(reduction="mean_with_sample_weight")`.

    The difference is under a `tf.distribute` strategy with several replicas. Keras divides
    each replica's weighted sum by that replica's own `sum w`, then averages the replicas, so
    when padding is spread unevenly over the replicas, a step is weighted by how many real
    steps happen to share its replica, and N replicas do not train like one device. Here the
    denominator is summed over all replicas (one scalar all-reduce per step), so the
    gradient is that of the global batch, exactly. Each replica returns
    `sum_replica(w * e) / sum_global(w)`, whose sum over the replicas is the loss; that is
    why, unlike Keras' losses, this one is not scaled by `1 / num_replicas` (the loss Keras
    reports is the replicas' mean of `num_replicas` times it, the global loss when the
    replicas' batches are equally large).

    Args:
        name: the loss' name.
        **kwargs: forwarded to `keras.losses.Loss` (`dtype`).

    Call arguments:
        y_true: targets `(batch, T)` or `(batch, T, k)`; a last axis of 1 may be left out
            of either `y_true` or `y_pred`.
        y_pred: predictions of the same shape.
        sample_weight: optional `(batch, T)` weights, the mask of real steps, or `(batch,)`
            weights of whole sequences. Its batch axis must be the targets' (it is never
            broadcast over the batch: a ValueError, or an error when the graph runs).

    Returns:
        A scalar.

    Example:

    ```python
    model.compile(optimizer="adam", loss=tf_gradrnn.MaskedMeanSquaredError())
    model.fit(x, y, sample_weight=mask.astype("float32"))  # padded steps do not count
    ```
    """

    def __init__(self, name: str = "masked_mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.square(y_pred - y_true)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
            if len(y_true.shape) == len(y_pred.shape) - 1:
                y_true = ops.expand_dims(y_true, -1)
            elif len(y_true.shape) == len(y_pred.shape) + 1 and y_true.shape[-1] == 1:
                y_true = ops.squeeze(y_true, -1)
            mask = keras_mask(y_pred)
            errors = self.call(y_true, y_pred)
            weights = []
            if sample_weight is not None:
                weights.append(ops.cast(sample_weight, errors.dtype))
            if mask is not None:
                weights.append(ops.cast(mask, errors.dtype))
            if not weights:
                weights = ops.ones_like(errors)
            else:
                weights = [self._aligned(w, errors) for w in weights]
                rank = max(len(w.shape) for w in weights)
                if len(errors.shape) > rank:  # the mean over what one weight covers
                    errors = ops.mean(errors, axis=tuple(range(rank, len(errors.shape))))
                product = ops.ones_like(errors)
                for w in weights:
                    product = product * self._expanded(w, errors)
                weights = product
            count = ops.sum(weights)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                count = replica.all_reduce("SUM", count)
            return ops.divide_no_nan(ops.sum(errors * weights), count)

    @staticmethod
    def _aligned(weights, errors):
        """`weights` without trailing axes of size 1 beyond the errors' rank, checked to
        cover a leading part of the errors' axes: the batch axis exactly, the others exactly
        or with size 1 (one weight for what the axis holds). A weight is never broadcast
        over the batch: a `(1, T)` mask for a batch of many is a mistake, not a shared mask."""
        while len(weights.shape) > len(errors.shape) and weights.shape[-1] == 1:
            weights = ops.squeeze(weights, -1)
        rank = len(weights.shape)
        pairs = list(zip(weights.shape, errors.shape[:rank], strict=False))
        fits = rank <= len(errors.shape) and not any(
            w is not None and e is not None and w != e and (axis == 0 or w != 1)
            for axis, (w, e) in enumerate(pairs)
        )
        words = ("MaskedMeanSquaredError: sample_weight of shape", "does not fit errors of shape")
        advice = "; give (batch,) or (batch, T) weights"
        if not fits:
            raise ValueError(
                f"{words[0]} {tuple(weights.shape)} {words[1]} {tuple(errors.shape)}{advice}"
            )
        if any(w is None or e is None for w, e in pairs):  # checked when the graph runs
            w, e = tf.shape(weights), tf.shape(errors)[:rank]
            fits = tf.reduce_all((w == e) | ((w == 1) & (tf.range(rank) > 0)))
            check = tf.debugging.Assert(fits, [words[0], w, words[1], e, advice], summarize=8)
            with tf.control_dependencies([check]):
                weights = tf.identity(weights)
        return weights

    @staticmethod
    def _expanded(weights, errors):
        for _ in range(len(errors.shape) - len(weights.shape)):
            weights = ops.expand_dims(weights, -1)
        return weights
