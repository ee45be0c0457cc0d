"""The data formats `data.load` reads, each into a `SequenceData` that `load` then checks.

Formats:
- `.npz`: `x` (n, T, features), `y` (n, T) and optionally `mask` (n, T) or `lengths` (n,).
  Integer arrays are cast; bool (but in `mask`), complex, text and object arrays are refused.
- `.csv`, long format: one row per step with a sequence id column, a time column (it orders
  the rows of a sequence: numbers numerically, anything else as text), feature columns and a
  target column.
- a folder of `*.tfrecord` files (`*.tfrecord.gz` for GZIP), one `tf.train.SequenceExample`
  per sequence: context `id` (bytes, optional), feature lists `x` (one float_list of `features`
  values per step) and `y` (one float_list of one value per step). `write_tfrecord` writes it.
"""

import csv
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_gradrnn.cli.sequence_data import DataError, SequenceData

NPZ_ARRAYS = ("x", "y", "mask", "lengths")  # the arrays of an .npz that are read


def read_npz(path: Path, target: bool) -> SequenceData:
    """An .npz file of named arrays, unchecked (`data.load` checks it)."""
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataError(f"cannot read {path} as .npz: {error}") from error
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: is one .npy array, not an .npz of named arrays (np.savez)")
    with npz:
        names, arrays = list(npz.files), {}
        for key in NPZ_ARRAYS:  # only these: another array may hold anything
            if key in names and (target or key != "y"):
                arrays[key] = _npz_array(npz, key, path)
    if "x" not in arrays:
        raise DataError(f"{path}: no array 'x' (it holds: {', '.join(names) or 'nothing'})")
    x = _numeric(arrays["x"], path, "x")
    if x.ndim != 3:
        raise DataError(f"{path}: x must have shape (n, time, features), got {x.shape}")
    n, steps, features = x.shape
    y = arrays.get("y")  # None unless target
    if y is None and target:
        raise DataError(f"{path}: no array 'y' (it holds: {', '.join(names)})")
    if y is not None:
        y = _numeric(y, path, "y")
        y = y[..., 0] if y.ndim == 3 and y.shape[-1] == 1 else y
        if y.shape != (n, steps):
            raise DataError(f"{path}: y must have shape (n, time) = {(n, steps)}, got {y.shape}")
    if "mask" in arrays and "lengths" in arrays:
        raise DataError(f"{path}: holds both 'mask' and 'lengths'; keep one")
    if "mask" in arrays:
        mask = arrays["mask"]
        if mask.shape != (n, steps):
            raise DataError(
                f"{path}: mask must have shape (n, time) = {(n, steps)}, got {mask.shape}"
            )
        if mask.dtype != bool:
            mask = _numeric(mask, path, "mask")
            other = np.argwhere(~np.isin(mask, (0, 1)))
            if other.size:
                i, t = other[0]
                raise DataError(
                    f"{path}: mask must hold bool or 0/1, got {mask[i, t]:g} at sequence {i}, "
                    f"step {t}"
                )
        mask = mask.astype(bool)
    elif "lengths" in arrays:
        lengths = _numeric(arrays["lengths"], path, "lengths")
        if lengths.shape != (n,):
            raise DataError(f"{path}: lengths must have shape (n,) = ({n},), got {lengths.shape}")
        # NaN is not whole (NaN != NaN); Inf is, and then lies outside 1..steps.
        bad = np.flatnonzero((lengths != np.round(lengths)) | (lengths < 1) | (lengths > steps))
        if bad.size:
            i = bad[0]
            raise DataError(
                f"{path}: lengths must be whole numbers in 1..{steps} (x's time steps), got "
                f"{lengths[i]:g} for sequence {i}"
            )
        mask = np.arange(steps) < lengths[:, None]
    else:
        mask = np.ones((n, steps), bool)
    ids = [str(i) for i in range(n)]
    steps = [[str(t) for t in np.flatnonzero(row)] for row in mask]
    return SequenceData(x, y, mask, ids, steps, [f"x{j + 1}" for j in range(features)], str(path))


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise DataError(f"cannot read {key} from {path}: {error}") from None
        # Loading Python objects runs pickle, which can run any code: never for a data file.
        raise DataError(
            f"{path}: {key} must hold numbers, got dtype object (Python objects, e.g. ragged "
            "sequences); pad them into one float array with a mask"
        ) from None
    except Exception as error:
        raise DataError(f"cannot read {key} from {path}: {error}") from None


def _numeric(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    """`array` as float64; ints are cast, bool, complex, text and other dtypes refused."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{path}: {name} must hold numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def read_csv(
    path: Path, target: bool, id_column, time_column, target_column, features
) -> SequenceData:
    """A long-format .csv file, one row per step, unchecked (`data.load` checks it)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # a BOM is not a name
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not rows:
        raise DataError(f"{path}: is empty (expected a header row)")
    header = [name.strip() for name in rows[0]]
    if target and target_column not in header:
        raise DataError(
            f"{path}: no target column '{target_column}' (columns: {', '.join(header)}); "
            "set --target-column"
        )
    named = (id_column, time_column, target_column)
    if features is None:
        features = [c for c in header if c not in named]
        if not features:
            raise DataError(f"{path}: no feature columns besides {', '.join(named)}")
    elif not features:
        raise DataError(f"{path}: the list of feature columns is empty; set --feature-columns")
    wanted = [("id", id_column, "--id-column"), ("time", time_column, "--time-column")]
    wanted += [("feature", name, "--feature-columns") for name in features]
    for kind, name, flag in wanted:
        if name not in header:
            raise DataError(
                f"{path}: no {kind} column '{name}' (columns: {', '.join(header)}); set {flag}"
            )
    value_columns = features + ([target_column] if target else [])
    where = [header.index(c) for c in value_columns]
    id_at, time_at = header.index(id_column), header.index(time_column)
    sequences: dict[str, dict[str, list[float]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        values = []
        for column, at in zip(value_columns, where, strict=True):
            try:
                value = float(row[at])
            except ValueError:
                raise DataError(
                    f"{path} line {line}: column '{column}' holds {row[at]!r}, not a number"
                ) from None
            if not math.isfinite(value):
                raise DataError(f"{path} line {line}: column '{column}' is {row[at]}")
            values.append(value)
        steps = sequences.setdefault(row[id_at], {})
        if row[time_at] in steps:
            raise DataError(
                f"{path} line {line}: sequence {row[id_at]} has {time_column} {row[time_at]} twice"
            )
        steps[row[time_at]] = values
    if not sequences:
        raise DataError(f"{path}: holds a header but no rows")
    ids = list(sequences)
    ordered = [sorted(sequences[i], key=_time_key(sequences[i])) for i in ids]
    values = [
        np.array([sequences[i][t] for t in steps]) for i, steps in zip(ids, ordered, strict=True)
    ]
    x, mask = _pad([v[:, : len(features)] for v in values])
    y = _pad([v[:, len(features)] for v in values])[0] if target else None
    return SequenceData(x, y, mask, ids, ordered, list(features), str(path))


def _time_key(steps):
    try:
        [float(t) for t in steps]
    except ValueError:
        return str
    return float


def _pad(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks arrays of shape (length_i, ...) into (n, max length, ...) and their mask."""
    longest = max(len(s) for s in sequences)
    padded = np.zeros((len(sequences), longest, *sequences[0].shape[1:]))
    mask = np.zeros((len(sequences), longest), bool)
    for i, s in enumerate(sequences):
        padded[i, : len(s)], mask[i, : len(s)] = s, True
    return padded, mask


def read_tfrecords(folder: Path, target: bool) -> SequenceData:
    """A folder of TFRecord files of SequenceExamples, unchecked (`data.load` checks it)."""
    files = sorted(p for p in folder.iterdir() if ".tfrecord" in p.name and p.is_file())
    if not files:
        raise DataError(f"{folder}: holds no *.tfrecord files")
    xs, ys, ids = [], [], []
    for file in files:
        compression = "GZIP" if file.suffix == ".gz" else ""
        try:
            records = [r.numpy() for r in tf.data.TFRecordDataset(str(file), compression)]
        except tf.errors.OpError as error:
            raise DataError(f"cannot read {file}: {error.message.splitlines()[0]}") from None
        for index, record in enumerate(records):
            x, y, name = _parse_sequence_example(record, f"{file} record {index}", target)
            if xs and x.shape[1] != xs[0].shape[1]:
                raise DataError(
                    f"{file} record {index}: {x.shape[1]} features per step, earlier records "
                    f"have {xs[0].shape[1]}"
                )
            xs.append(x)
            ys.append(y)
            ids.append(name or f"{file.name}:{index}")
    if not xs:
        raise DataError(f"{folder}: its TFRecord files hold no records")
    x, mask = _pad(xs)
    y = _pad(ys)[0] if target else None
    steps = [[str(t) for t in range(len(xi))] for xi in xs]
    return SequenceData(
        x, y, mask, ids, steps, [f"x{j + 1}" for j in range(x.shape[-1])], str(folder)
    )


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
        y = np.array(y)[:, 0]
    elif target:
        raise DataError(f"{where}: no feature list 'y'")
    name = context["id"].bytes_list.value[0].decode() if "id" in context else None
    return np.array(x), y, name


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
