"""Sequence data for the command line: .npz, long-format .csv or a folder of TFRecord files.

`load` reads a file or folder into one `SequenceData` (shapes and mask: `sequence_data`) and
checks it; the formats and their readers are in `data_formats`. `fingerprint`, `split`,
`training_dataset` and `evaluation_dataset` turn the checked data into what training needs.
"""

import hashlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_gradrnn.cli.data_formats import (
    NPZ_ARRAYS,
    read_csv,
    read_npz,
    read_tfrecords,
    write_tfrecord,
)
from tf_gradrnn.cli.sequence_data import DataError, SequenceData

__all__ = [
    "FLOAT32_MAX",
    "NPZ_ARRAYS",
    "DataError",
    "SequenceData",
    "evaluation_dataset",
    "fingerprint",
    "load",
    "split",
    "training_dataset",
    "write_tfrecord",
]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def load(
    path,
    target: bool = True,
    id_column: str = "sequence",
    time_column: str = "step",
    target_column: str = "y",
    feature_columns: list[str] | None = None,
) -> SequenceData:
    """Loads `path` (.npz, .csv or a folder of TFRecord files) and validates it.

    Args:
        path: the data file or folder.
        target: whether `y` is required (training, evaluation) or ignored (prediction: `y`
            is None, and a bad target, a NaN or a wrong shape, is not an error).
        id_column, time_column, target_column: .csv column names.
        feature_columns: .csv feature columns; by default every other column.

    Raises:
        DataError: with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        data = read_tfrecords(path, target)
    elif path.suffix == ".npz":
        data = read_npz(path, target)
    elif path.suffix == ".csv":
        data = read_csv(path, target, id_column, time_column, target_column, feature_columns)
    else:
        raise DataError(f"{path}: unknown data format; use .npz, .csv or a folder of .tfrecord")
    return _checked(data)


def _checked(data: SequenceData) -> SequenceData:
    n, steps, features = data.x.shape
    if n == 0:
        raise DataError(f"{data.source}: holds no sequences (x has shape {data.x.shape})")
    if steps == 0:
        raise DataError(
            f"{data.source}: its sequences have no time steps (x has shape {data.x.shape})"
        )
    if features == 0:  # oneDNN aborts the whole process on a layer of no inputs
        raise DataError(f"{data.source}: x has no features per step (shape {data.x.shape})")
    empty = np.flatnonzero(~data.mask.any(axis=1))
    if empty.size:
        raise DataError(
            f"{data.source}: sequence {data.ids[empty[0]]} has no real step (its mask is all "
            "False); drop it or unmask a step"
        )
    for name, values in (("x", data.x), ("y", data.y)):
        if values is None:
            continue
        # Real steps only: padded values are zeroed below. A finite float64 beyond float32's
        # range would become Inf in that cast, silently.
        real = data.mask[..., None] if values.ndim == 3 else data.mask
        for problem, bad in (
            ("NaN or Inf", ~np.isfinite(values)),
            ("a value beyond float32's range (+-3.4e38)", np.abs(values) > FLOAT32_MAX),
        ):
            where = np.argwhere(bad & real)
            if where.size:
                i, t, *j = where[0]
                time = data.steps[i][int(data.mask[i, :t].sum())]  # the time column's value
                feature = f", feature {data.feature_names[j[0]]}" if j else ""
                raise DataError(
                    f"{data.source}: {name} holds {problem} (first in sequence {data.ids[i]}, "
                    f"step {time}{feature})"
                )
    x = np.where(data.mask[..., None], data.x, 0.0).astype(np.float32)
    y = None if data.y is None else np.where(data.mask, data.y, 0.0).astype(np.float32)
    return data._replace(x=x, y=y)


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
