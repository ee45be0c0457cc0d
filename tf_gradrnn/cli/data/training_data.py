"""What training needs from checked data: its fingerprint, a train/validation split, and
the `tf.data` pipelines of its batches."""

import hashlib

import numpy as np
import tensorflow as tf

from tf_gradrnn.cli.data.sequence_data import DataError, SequenceData


def fingerprint(data: SequenceData) -> str:
    """A SHA-256 of the padded arrays: a resumed run checks that its data has not changed."""
    digest = hashlib.sha256()
    for array in (data.x, data.y, data.mask):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def split(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train and validation indices (sorted); a seed always gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(validation_split * n))
    if validation_split > 0 and not 0 < n_val < n:
        raise DataError(
            f"a validation split of {validation_split} leaves {n_val} of {n} sequences for "
            "validation; use more sequences or --validation-split 0"
        )
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _elements(data: SequenceData, indices: np.ndarray) -> tuple:
    inputs = {"x": data.x[indices], "mask": data.mask[indices]}
    if data.y is None:
        return (inputs,)
    return inputs, data.y[indices][..., None], data.mask[indices].astype(np.float32)


def training_dataset(
    data: SequenceData,
    indices: np.ndarray,
    batch_size: int,
    seed: int,
    first_epoch: int,
    epochs: int,
) -> tf.data.Dataset:
    """Batches for epochs `first_epoch .. epochs - 1`, shuffled, batched and prefetched.

    Elements are `({"x": (b, T, F), "mask": (b, T)}, y: (b, T, 1), weight: (b, T))`, the
    weight being the mask. Fit with `steps_per_epoch=ceil(len(indices) / batch_size)`.

    Each epoch is shuffled by a stateless permutation seeded with `(seed, epoch)`, so epoch 7
    sees the same order whether or not the run was interrupted and resumed at epoch 5
    (`Dataset.shuffle` would reshuffle by how many epochs this process has run).
    """
    elements = tf.nest.map_structure(tf.constant, _elements(data, indices))

    def epoch_order(epoch):
        keys = tf.random.stateless_uniform([len(indices)], seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys)).batch(batch_size)

    def gather(batch):
        return tf.nest.map_structure(lambda a: tf.gather(a, batch), elements)

    order = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_order)
    return order.map(gather).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(data: SequenceData, indices: np.ndarray, batch_size: int):
    """`training_dataset`'s elements (only the inputs if `data.y` is None), in order."""
    elements = _elements(data, indices)
    return tf.data.Dataset.from_tensor_slices(elements).batch(batch_size).prefetch(2)
