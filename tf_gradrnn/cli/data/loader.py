"""`load`: a data file or folder, in any format, into one checked `SequenceData`."""

from pathlib import Path

from tf_gradrnn.cli.data.csv_file import read_csv
from tf_gradrnn.cli.data.npz_file import read_npz
from tf_gradrnn.cli.data.sequence_data import DataError, SequenceData, check, name_list
from tf_gradrnn.cli.data.tfrecord_files import read_tfrecords


def load(
    path,
    target: bool = True,
    id_column: str = "sequence",
    time_column: str = "step",
    target_column: str = "y",
    feature_columns: list[str] | None = None,
    expected_features: list[str] | None = None,
) -> SequenceData:
    """Loads `path` (.npz, .csv or a folder of TFRecord files) and validates it.

    Args:
        path: the data file or folder.
        target: whether `y` is required (training, evaluation) or ignored (prediction: `y`
            is None, and a bad target, a NaN or a wrong shape, is not an error).
        id_column, time_column, target_column: .csv column names.
        feature_columns: .csv feature columns; by default every other column.
        expected_features: the names of the features the model was trained on, in its
            order (`run_folder.trained_features`), or None. A file that names its features
            (.csv, .npz with `feature_names`) must have them all, and x takes them in this
            order wherever they are in the file; a file that does not (.npz without
            `feature_names`, TFRecord) must have as many.

    Raises:
        DataError: with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    expected = None if expected_features is None else list(expected_features)
    if path.is_dir():
        data = read_tfrecords(path, target, expected)
    elif path.suffix == ".npz":
        data = read_npz(path, target, expected)
    elif path.suffix == ".csv":
        columns = _feature_columns(path, feature_columns, expected)
        hint = (
            "set --feature-columns"
            if expected is None
            else f"the model was trained on {name_list(expected)}"
        )
        data = read_csv(path, target, id_column, time_column, target_column, columns, hint)
    else:
        raise DataError(f"{path}: unknown data format; use .npz, .csv or a folder of .tfrecord")
    return check(data)


def _feature_columns(path: Path, given: list[str] | None, expected: list[str] | None):
    """The .csv columns x takes, in order: the model's features if known, else the given."""
    if expected is None or given is None:
        return expected if expected is not None else given
    if sorted(given) != sorted(expected):
        raise DataError(
            f"{path}: --feature-columns {name_list(given)} differ from the features the model "
            f"was trained on ({name_list(expected)}); drop --feature-columns"
        )
    return expected
