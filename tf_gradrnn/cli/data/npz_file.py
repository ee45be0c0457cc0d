"""The .npz format: named arrays (np.savez or np.savez_compressed).

    x (n, T, features)   y (n, T) or (n, T, 1)   mask (n, T) bool or 0/1, or lengths (n,)
    feature_names (features,) text, optional: then features are matched by name

Integer arrays are cast; bool (but in `mask`), complex, text and object arrays are refused.
Every array's shape and dtype are checked from its .npy header before any data is read, so
a small compressed file that claims terabytes is refused at once.
"""

import math
import os
from pathlib import Path

import numpy as np

from tf_gradrnn.cli.data.sequence_data import (
    DataError,
    SequenceData,
    StepIndices,
    name_list,
    numbered_features,
)

NPZ_ARRAYS = ("x", "y", "mask", "lengths", "feature_names")  # the arrays of an .npz that are read


def read_npz(path: Path, target: bool, expected: list[str] | None = None) -> SequenceData:
    """An .npz file of named arrays, unchecked (`loader.load` checks it).

    With `expected` feature names, x's features are taken by name if the file has
    `feature_names`, and only counted otherwise.
    """
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as error:
        raise DataError(f"cannot read {path} as .npz: {error}") from error
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: is one .npy array, not an .npz of named arrays (np.savez)")
    with npz:
        names = list(npz.files)
        wanted = [key for key in NPZ_ARRAYS if key in names and (target or key != "y")]
        headers = {key: _header(npz, key, path) for key in wanted}
        if "x" not in headers:
            raise DataError(f"{path}: no array 'x' (it holds: {name_list(names) or 'nothing'})")
        _check_headers(headers, path)
        if target and "y" not in headers:
            raise DataError(f"{path}: no array 'y' (it holds: {name_list(names)})")
        order, feature_names = _features(npz, headers, path, expected)
        arrays = {key: _array(npz, key, path) for key in headers if key != "feature_names"}
    x = arrays["x"] if order is None else arrays["x"][..., order]
    n, steps, _ = x.shape
    y = arrays.get("y")
    if y is not None and y.ndim == 3:
        y = y[..., 0]
    mask = _mask(arrays, n, steps, path)
    named = feature_names is not None
    feature_names = feature_names or numbered_features(x.shape[-1])
    return SequenceData(
        x, y, mask, [str(i) for i in range(n)], StepIndices(mask), feature_names, str(path), named
    )


def _header(npz, key: str, path: Path) -> tuple[tuple, np.dtype]:
    """The shape and dtype of `key`, read from its .npy header alone."""
    member = key + ".npy" if key + ".npy" in npz.zip.namelist() else key
    try:
        with npz.zip.open(member) as file:
            version = np.lib.format.read_magic(file)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(file)
    except Exception as error:
        raise DataError(f"cannot read {key} from {path}: {error}") from None
    return shape, dtype


def _check_headers(headers: dict, path: Path) -> None:
    for key, (_, dtype) in headers.items():
        if key == "feature_names":
            if dtype.kind not in "US":
                raise DataError(f"{path}: feature_names must hold text, got dtype {dtype}")
        elif dtype.hasobject:
            # Loading Python objects runs pickle, which can run any code: never for a data file.
            raise DataError(
                f"{path}: {key} must hold numbers, got dtype object (Python objects, e.g. "
                "ragged sequences); pad them into one float array with a mask"
            )
        elif not (dtype.kind in "iuf" or (key == "mask" and dtype.kind == "b")):
            raise DataError(f"{path}: {key} must hold numbers, got dtype {dtype}")
    x_shape, x_dtype = headers["x"]
    if len(x_shape) != 3:
        raise DataError(f"{path}: x must have shape (n, time, features), got {x_shape}")
    n, steps, features = x_shape
    shapes = {key: shape for key, (shape, _) in headers.items()}
    if "y" in shapes and shapes["y"] not in ((n, steps), (n, steps, 1)):
        raise DataError(f"{path}: y must have shape (n, time) = {(n, steps)}, got {shapes['y']}")
    if "mask" in shapes and "lengths" in shapes:
        raise DataError(f"{path}: holds both 'mask' and 'lengths'; keep one")
    if "mask" in shapes and shapes["mask"] != (n, steps):
        raise DataError(
            f"{path}: mask must have shape (n, time) = {(n, steps)}, got {shapes['mask']}"
        )
    if "lengths" in shapes and shapes["lengths"] != (n,):
        raise DataError(f"{path}: lengths must have shape (n,) = ({n},), got {shapes['lengths']}")
    if "feature_names" in shapes and shapes["feature_names"] != (features,):
        raise DataError(
            f"{path}: feature_names must have shape (features,) = ({features},), got "
            f"{shapes['feature_names']}"
        )
    size = math.prod(x_shape) * x_dtype.itemsize
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if size > memory:
        raise DataError(
            f"{path}: x of shape {x_shape} ({x_dtype}) takes {size / 2**30:,.1f} GiB, more than "
            f"this machine's memory ({memory / 2**30:,.1f} GiB)"
        )


def _features(npz, headers: dict, path: Path, expected: list[str] | None):
    """The order in which to take x's features (None: as stored) and the file's names."""
    features = headers["x"][0][2]
    if "feature_names" not in headers:
        if expected is not None and features != len(expected):
            raise DataError(
                f"{path}: x has {features} features per step; the model was trained on "
                f"{len(expected)} ({name_list(expected)})"
            )
        return None, None
    try:
        stored = [
            name.decode() if isinstance(name, bytes) else name
            for name in _array(npz, "feature_names", path).tolist()
        ]
    except UnicodeDecodeError:
        raise DataError(f"{path}: feature_names must be UTF-8 text") from None
    index = {name: j for j, name in enumerate(stored)}
    if len(index) != len(stored) or "" in index:
        raise DataError(f"{path}: feature_names must be distinct, non-empty names")
    if expected is None:
        return None, stored
    missing = [name for name in expected if name not in index]
    if missing or len(expected) != len(stored):
        raise DataError(
            f"{path}: feature_names are {name_list(stored)}; the model was trained on "
            f"{name_list(expected)}" + (f" (missing: {name_list(missing)})" if missing else "")
        )
    order = [index[name] for name in expected]
    return (None if order == list(range(features)) else order), list(expected)


def _array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except Exception as error:
        raise DataError(f"cannot read {key} from {path}: {error}") from None


def _mask(arrays: dict, n: int, steps: int, path: Path) -> np.ndarray:
    if "mask" in arrays:
        mask = arrays["mask"]
        if mask.dtype != bool:
            other = np.argwhere((mask != 0) & (mask != 1))
            if other.size:
                i, t = other[0]
                raise DataError(
                    f"{path}: mask must hold bool or 0/1, got {mask[i, t]:g} at sequence {i}, "
                    f"step {t}"
                )
        return mask.astype(bool)
    if "lengths" in arrays:
        lengths = arrays["lengths"].astype(np.float64)
        # NaN is not whole (NaN != NaN); Inf is, and then lies outside 1..steps.
        bad = np.flatnonzero((lengths != np.round(lengths)) | (lengths < 1) | (lengths > steps))
        if bad.size:
            i = bad[0]
            raise DataError(
                f"{path}: lengths must be whole numbers in 1..{steps} (x's time steps), got "
                f"{lengths[i]:g} for sequence {i}"
            )
        return np.arange(steps) < lengths[:, None]
    return np.ones((n, steps), bool)
