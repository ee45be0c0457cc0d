"""Sequence data for the command line: .npz, long-format .csv or a folder of TFRecord files.

`load` (`loader`) reads a file or folder into one checked `SequenceData` (shapes, mask and
checks: `sequence_data`); each format has its reader (`npz_file`, `csv_file`,
`tfrecord_files`). `fingerprint`, `split`, `training_dataset` and `evaluation_dataset`
(`training_data`) turn the checked data into what training needs.
"""

from tf_gradrnn.cli.data.loader import load
from tf_gradrnn.cli.data.npz_file import NPZ_ARRAYS
from tf_gradrnn.cli.data.sequence_data import FLOAT32_MAX, DataError, SequenceData
from tf_gradrnn.cli.data.tfrecord_files import write_tfrecord
from tf_gradrnn.cli.data.training_data import (
    evaluation_dataset,
    fingerprint,
    split,
    training_dataset,
)

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
