"""The TFRecord format: a folder of `*.tfrecord` files (`*.tfrecord.gz` for GZIP), one
`tf.train.SequenceExample` per sequence:

    context        id  one bytes value, UTF-8: the sequence's name (optional; default file:index)
    feature_lists  x   one float_list of `features` values per step
                   y   one float_list of one value per step

Files are read in name order; hidden files (`.tmp-a.tfrecord`, being written) and other
names (`a.tfrecord.bak`) are skipped. `write_tfrecord` writes this format.
"""

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_gradrnn.cli.data.sequence_data import (
    DataError,
    SequenceData,
    StepIndices,
    name_list,
    numbered_features,
    pad,
)

SUFFIXES = {".tfrecord": "", ".tfrecord.gz": "GZIP"}  # file name ending -> compression
# TensorFlow prefixes a tf.data error with the function it ran in and suffixes it with the op.
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$")


def tfrecord_files(folder: Path) -> list[tuple[Path, str]]:
    """The folder's TFRecord files, in name order, and their compression."""
    files = []
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        if suffix and not path.name.startswith(".") and path.is_file():
            files.append((path, SUFFIXES[suffix]))
    return files


def read_tfrecords(folder: Path, target: bool, expected: list[str] | None = None) -> SequenceData:
    """A folder of TFRecord files of SequenceExamples, unchecked (`loader.load` checks it);
    with `expected` feature names (the format has none), the features are counted."""
    files = tfrecord_files(folder)
    if not files:
        raise DataError(f"{folder}: holds no *.tfrecord files")
    features = len(expected) if expected is not None else None
    xs, ys, ids = [], [], []
    for file, compression in files:
        try:
            for index, record in enumerate(tf.data.TFRecordDataset(str(file), compression)):
                where = f"{file} record {index}"
                x, y, name = _parse_sequence_example(record.numpy(), where, target)
                if features is None:
                    features = x.shape[1]
                if x.shape[1] != features:
                    trained = f"the model was trained on {features} ({name_list(expected)})"
                    earlier = f"earlier records have {features}"
                    raise DataError(
                        f"{where}: {x.shape[1]} features per step, "
                        f"{trained if expected is not None else earlier}"
                    )
                xs.append(x)
                ys.append(y)
                ids.append(name or f"{file.name}:{index}")
        except tf.errors.OpError as error:
            message = _TF_NOISE.sub("", error.message.splitlines()[0]).strip()
            raise DataError(f"cannot read {file}: {message}") from None
    if not xs:
        raise DataError(f"{folder}: its TFRecord files hold no records")
    x, mask = pad(xs)
    y = pad(ys)[0] if target else None
    names = numbered_features(x.shape[-1])
    return SequenceData(x, y, mask, ids, StepIndices(mask), names, str(folder), False)


def _parse_sequence_example(record: bytes, where: str, target: bool):
    """Returns x: (length, features), y: (length,) or None, and the id (or None)."""
    try:
        example = tf.train.SequenceExample.FromString(record)
    except Exception:
        raise DataError(f"{where}: not a tf.train.SequenceExample") from None
    lists, context = example.feature_lists.feature_list, example.context.feature
    if "x" not in lists:
        raise DataError(f"{where}: no feature list 'x'")
    if not lists["x"].feature:
        raise DataError(f"{where}: feature list 'x' has no steps (a sequence needs one or more)")
    x = _floats(lists["x"], "x", where)
    if len({len(v) for v in x}) != 1 or not x[0]:
        raise DataError(f"{where}: feature list 'x' must hold the same number of floats per step")
    y = None
    if target and "y" in lists:
        y = _floats(lists["y"], "y", where)
        if len(y) != len(x) or any(len(v) != 1 for v in y):
            raise DataError(
                f"{where}: feature list 'y' must hold one float at each of {len(x)} steps"
            )
        y = np.array(y, np.float32)[:, 0]
    elif target:
        raise DataError(f"{where}: no feature list 'y'")
    return np.array(x, np.float32), y, _id(context, where)


def _id(context, where: str) -> str | None:
    if "id" not in context:
        return None
    feature = context["id"]
    values = feature.bytes_list.value
    if feature.WhichOneof("kind") != "bytes_list" or len(values) != 1:
        kind = feature.WhichOneof("kind") or "no values"
        count = f" of {len(values)} values" if kind == "bytes_list" else ""
        raise DataError(
            f"{where}: context feature 'id' must hold one bytes value (the sequence's name), "
            f"got {kind}{count}"
        )
    try:
        return values[0].decode()
    except UnicodeDecodeError:
        raise DataError(f"{where}: context feature 'id' is not UTF-8 text") from None


def _floats(feature_list, name: str, where: str) -> list:
    """Each step's float_list values; another kind (int64_list, bytes_list) is refused."""
    for t, feature in enumerate(feature_list.feature):
        kind = feature.WhichOneof("kind")
        if kind not in ("float_list", None):  # None: an empty Feature, no values
            raise DataError(
                f"{where}: feature list '{name}' holds {kind} at step {t}; it must hold float_list"
            )
    return [feature.float_list.value for feature in feature_list.feature]


def write_tfrecord(path, x, y=None, mask=None, ids=None) -> None:
    """Writes sequences to one TFRecord file in the format `load` reads.

    Args:
        x: (n, T, features); y: optional (n, T); mask: optional (n, T) bool, True at the
        steps to write (default: all); ids: optional n sequence ids.
    """
    mask = np.ones(np.shape(x)[:2], bool) if mask is None else np.asarray(mask, bool)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(x)):
            example = tf.train.SequenceExample()
            if ids is not None:
                example.context.feature["id"].bytes_list.value.append(str(ids[i]).encode())
            lists = example.feature_lists.feature_list
            for t in np.flatnonzero(mask[i]):
                lists["x"].feature.add().float_list.value[:] = np.asarray(x[i][t], np.float32)
                if y is not None:
                    lists["y"].feature.add().float_list.value.append(float(y[i][t]))
            writer.write(example.SerializeToString())
