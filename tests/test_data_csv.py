"""The long .csv format: columns found by name, each name once, times that are numbers."""

import numpy as np
import pytest

from tf_gradrnn.cli import data as data_lib

ROWS = [("a", 0, 1.0, 10.0, 0.5), ("a", 1, 2.0, 20.0, 0.25), ("b", 0, 3.0, 30.0, 1.0)]


def write(path, columns=("sequence", "step", "u", "v", "y"), rows=ROWS):
    """A .csv of `rows` (given in the order sequence, step, u, v, y) with `columns` in the
    order given."""
    order = [("sequence", "step", "u", "v", "y").index(c) for c in columns]
    lines = [",".join(columns)] + [",".join(str(row[k]) for k in order) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def refused(path, message, **options):
    with pytest.raises(data_lib.DataError) as error:
        data_lib.load(path, **options)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text, text


def test_the_models_features_are_taken_by_name_in_any_column_order(tmp_path):
    straight = data_lib.load(write(tmp_path / "uv.csv"), expected_features=["u", "v"])
    columns = ("y", "v", "step", "u", "sequence")
    swapped = data_lib.load(write(tmp_path / "vu.csv", columns), expected_features=["u", "v"])
    np.testing.assert_array_equal(straight.x, [[[1, 10], [2, 20]], [[3, 30], [0, 0]]])
    np.testing.assert_array_equal(swapped.x, straight.x)
    np.testing.assert_array_equal(swapped.y, straight.y)
    assert swapped.feature_names == ["u", "v"] and swapped.named
    # The same set given on the command line, in another order, still follows the model.
    given = data_lib.load(
        tmp_path / "vu.csv", feature_columns=["v", "u"], expected_features=["u", "v"]
    )
    np.testing.assert_array_equal(given.x, straight.x)


def test_renamed_feature_columns_are_refused_naming_them(tmp_path):
    path = write(tmp_path / "data.csv")
    path.write_text(path.read_text().replace("u,v", "p,q", 1))
    refused(path, "no feature column 'u', 'v'", expected_features=["u", "v"])
    refused(path, "the model was trained on u, v", expected_features=["u", "v"])


def test_feature_columns_that_are_not_the_models_are_refused(tmp_path):
    path = write(tmp_path / "data.csv")
    refused(
        path,
        "--feature-columns u differ from the features the model was trained on (u, v)",
        feature_columns=["u"],
        expected_features=["u", "v"],
    )


def test_a_column_name_twice_in_the_header_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sequence,step,u,u,y\na,0,1,2,3\n")
    refused(path, "column 'u' appears twice in the header (columns 3 and 4)")


def test_a_feature_column_given_twice_is_refused(tmp_path):
    path = write(tmp_path / "data.csv")
    refused(path, "feature column 'u' is listed twice", feature_columns=["u", "u"])


def test_times_are_compared_as_numbers(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("sequence,step,u,y\na,0,1,1\na,1,2,2\na,01,3,3\n")
    refused(path, "line 4: sequence a has step 01 twice (line 3 has 1)")
    path.write_text("sequence,step,u,y\na,1e0,1,1\na, 1,2,2\n")
    refused(path, "line 3: sequence a has step  1 twice (line 2 has 1e0)")


@pytest.mark.parametrize("time", ["end", "t1", "nan", "inf", ""], ids=str)
def test_a_time_that_is_not_a_finite_number_is_refused(tmp_path, time):
    path = tmp_path / "data.csv"
    path.write_text(f"sequence,step,u,y\na,0,1,1\na,{time},2,2\n")
    refused(path, "line 3: column 'step' ")
    refused(path, "times must be finite numbers")


def test_rows_are_ordered_by_numeric_time(tmp_path):
    path = tmp_path / "data.csv"
    times = [10, 2, 1, 11, 0, 2.5, -1]
    rows = [f"a,{t},{t},0" for t in times]
    path.write_text("sequence,step,u,y\n" + "\n".join(rows) + "\n")
    data = data_lib.load(path)
    assert data.steps == [["-1", "0", "1", "2", "2.5", "10", "11"]]
    np.testing.assert_array_equal(data.x[0, :, 0], sorted(times))


def test_many_columns_are_each_found_by_name(tmp_path):
    # 5,000 columns; the features are picked in an order unrelated to the file's.
    columns = [f"c{k}" for k in range(5000)]
    path = tmp_path / "wide.csv"
    values = [str(k) for k in range(5000)]
    path.write_text(
        ",".join(["sequence", "step", *columns, "y"])
        + "\n"
        + ",".join(["a", "0", *values, "7"])
        + "\n"
    )
    picked = ["c4999", "c3", "c2500", "c0"]
    data = data_lib.load(path, feature_columns=picked)
    np.testing.assert_array_equal(data.x[0, 0], [4999, 3, 2500, 0])
    everything = data_lib.load(path)
    assert everything.features == 5000
    np.testing.assert_array_equal(everything.x[0, 0], np.arange(5000))
