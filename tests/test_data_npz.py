"""The .npz format: optional feature names, and every shape checked from the .npy headers
before the data is read."""

import io
import zipfile

import numpy as np
import pytest
from rss import reset_peak, resident_mb

from tf_gradrnn.cli import data as data_lib

X = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
Y = np.ones((2, 3), "float32")


def refused(path, message, **options):
    with pytest.raises(data_lib.DataError) as error:
        data_lib.load(path, **options)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text, text


def headers_only(path, shape):
    """An .npz whose x.npy and y.npy headers say x has `shape`, but which holds no data."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array_shape in (("x", shape), ("y", shape[:2])):
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": array_shape}
            )
            archive.writestr(f"{name}.npy", header.getvalue())
    return path


def test_named_features_are_taken_by_name(tmp_path):
    np.savez(tmp_path / "vu.npz", x=X[..., ::-1], y=Y, feature_names=np.array(["v", "u"]))
    data = data_lib.load(tmp_path / "vu.npz", expected_features=["u", "v"])
    np.testing.assert_array_equal(data.x, X)
    assert data.feature_names == ["u", "v"] and data.named
    plain = data_lib.load(tmp_path / "vu.npz")  # without a model: as stored
    np.testing.assert_array_equal(plain.x, X[..., ::-1])
    assert plain.feature_names == ["v", "u"]


def test_named_features_that_are_not_the_models_are_refused(tmp_path):
    np.savez(tmp_path / "data.npz", x=X, y=Y, feature_names=np.array([b"u", b"w"]))
    refused(
        tmp_path / "data.npz",
        "feature_names are u, w; the model was trained on u, v (missing: v)",
        expected_features=["u", "v"],
    )


def test_feature_names_of_the_wrong_shape_are_refused(tmp_path):
    np.savez(tmp_path / "data.npz", x=X, y=Y, feature_names=np.array(["u"]))
    refused(tmp_path / "data.npz", "feature_names must have shape (features,) = (2,), got (1,)")


def test_unnamed_features_are_counted_from_the_header_before_reading(tmp_path):
    # The header says 5 features and no data follows: reading it would fail differently.
    path = headers_only(tmp_path / "data.npz", (2, 3, 5))
    refused(
        path,
        "x has 5 features per step; the model was trained on 2 (u, v)",
        expected_features=["u", "v"],
    )


def test_a_size_beyond_memory_is_refused_from_the_header(tmp_path):
    path = headers_only(tmp_path / "huge.npz", (10**5, 10**5, 10**3))
    refused(path, "x of shape (100000, 100000, 1000) (float32) takes 37,252.9 GiB")
    refused(path, "more than this machine's memory")


def test_loading_keeps_no_per_step_objects(tmp_path):
    steps = 2_000_000  # one sequence of 2M steps of one feature, 8 MB as float32
    np.savez_compressed(tmp_path / "long.npz", x=np.zeros((1, steps, 1), "float32"))
    exact = reset_peak()
    before = resident_mb()
    data = data_lib.load(tmp_path / "long.npz", target=False)
    growth = (resident_mb("VmHWM") if exact else resident_mb()) - before
    assert data.x.shape == (1, steps, 1) and data.steps[0][-1] == str(steps - 1)
    # The arrays (x, mask) and a few bool temporaries; a string per step would take 100+ MB.
    assert growth < 60, f"{growth:.0f} MB to load 8 MB"
