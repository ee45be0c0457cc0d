"""The padded sequences every data format loads into, the error a bad file raises, and the
checks every loaded data set passes.

Every format loads into one `SequenceData`: sequences padded at the end to the longest one,

    x: (n, T, features) float32     y: (n, T) float32     mask: (n, T) bool (True = real step)

with padded values set to zero (NaN there would leak into gradients through `0 * NaN`).
Models see the mask: a masked step keeps the previous state and has zero weight in the loss.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataError(ValueError):
    """A problem with the user's data; the message names the file and the problem."""


class SequenceData(NamedTuple):
    """Padded sequences and their mask; see the module docstring for the shapes."""

    x: np.ndarray
    y: np.ndarray | None
    mask: np.ndarray
    ids: list[str]
    steps: Sequence[list[str]]  # each sequence's time values, as text, real steps only
    feature_names: list[str]
    source: str
    named: bool = True  # whether the file names its features (False: x1, x2, ... made up)

    @property
    def features(self) -> int:
        return self.x.shape[-1]

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)


class StepIndices(Sequence):
    """`SequenceData.steps` of a format without a time column: sequence i's real steps are
    named by their index, computed when asked (a list of strings per step would take ten
    times the memory of the arrays)."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, i: int) -> list[str]:
        return [str(t) for t in np.flatnonzero(self.mask[i])]


def numbered_features(count: int) -> list[str]:
    """The names of the features of a file that names none: x1, x2, ..."""
    return [f"x{j + 1}" for j in range(count)]


def name_list(names: Sequence[str], limit: int = 10) -> str:
    """`a, b, c`, cut after `limit` names: a file may have 50,000 columns, a message one line."""
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def pad(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks arrays of shape (length_i, ...) into (n, max length, ...) and their mask."""
    longest = max(len(s) for s in sequences)
    padded = np.zeros((len(sequences), longest, *sequences[0].shape[1:]), sequences[0].dtype)
    mask = np.zeros((len(sequences), longest), bool)
    for i, s in enumerate(sequences):
        padded[i, : len(s)], mask[i, : len(s)] = s, True
    return padded, mask


def check(data: SequenceData) -> SequenceData:
    """`data` with x and y cast to float32 and zero at padded steps, once it passes the checks
    every format shares: sequences, steps and features exist, every sequence has a real
    step, and every real value is finite in float32. Raises `DataError` otherwise."""
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
    x = _float32(data, "x", data.x)
    y = None if data.y is None else _float32(data, "y", data.y)
    return data._replace(x=x, y=y)


def _float32(data: SequenceData, name: str, values: np.ndarray) -> np.ndarray:
    """`values` as float32 (in place when they are float32 already: the reader's own copy),
    padded steps zeroed; refuses NaN, Inf and values beyond float32's range at real steps."""
    with np.errstate(over="ignore", invalid="ignore"):
        single = values.astype(np.float32, copy=False)
    real = data.mask[..., None] if values.ndim == 3 else data.mask
    # One pass in float32: a finite float64 beyond float32's range is Inf there.
    bad = ~np.isfinite(single)
    bad &= real
    if bad.any():
        i, t, *j = np.unravel_index(np.argmax(bad), bad.shape)
        problem = (
            "NaN or Inf"
            if not np.isfinite(values[(i, t, *j)])
            else "a value beyond float32's range (+-3.4e38)"
        )
        time = data.steps[i][int(data.mask[i, :t].sum())]  # the time column's value
        feature = f", feature {data.feature_names[j[0]]}" if j else ""
        raise DataError(
            f"{data.source}: {name} holds {problem} (first in sequence {data.ids[i]}, "
            f"step {time}{feature})"
        )
    np.copyto(single, 0, where=~real)
    return single
