"""The padded sequences every data format loads into, and the error a bad file raises.

Every format loads into one `SequenceData`: sequences padded at the end to the longest one,

    x: (n, T, features) float32     y: (n, T) float32     mask: (n, T) bool (True = real step)

with padded values set to zero (NaN there would leak into gradients through `0 * NaN`).
Models see the mask: a masked step keeps the previous state and has zero weight in the loss.
"""

from typing import NamedTuple

import numpy as np


class DataError(ValueError):
    """A problem with the user's data; the message names the file and the problem."""


class SequenceData(NamedTuple):
    """Padded sequences and their mask; see the module docstring for the shapes."""

    x: np.ndarray
    y: np.ndarray | None
    mask: np.ndarray
    ids: list[str]
    steps: list[list[str]]  # each sequence's time values, as text, real steps only
    feature_names: list[str]
    source: str

    @property
    def features(self) -> int:
        return self.x.shape[-1]

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)
