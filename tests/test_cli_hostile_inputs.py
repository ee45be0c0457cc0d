"""Hostile data files through the `tf-gradrnn` command: train, evaluate and predict.

An empty data set, sequences of no steps, wrong dtypes, wrong shapes and a very long sequence.
Each ends with one line naming the file, the array or column and the problem (exit status 2,
nothing written), or with the result docs/robustness.md ("Hostile inputs") describes. All runs
are in this process through `cli.main`, with a model of 2 state units trained for one epoch.
"""

import numpy as np
import pytest
import tensorflow as tf
from rss import reset_peak, resident_mb

from tf_gradrnn import cli

N, T, D = 6, 5, 2
TINY = ["--epochs", "1", "--units", "2", "--hidden-units", "4", "--no-jit"]
VERBS = ("train", "evaluate", "predict")


def sequences():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, T, D)).astype("float32"), rng.standard_normal((N, T))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    x, y = sequences()
    np.savez(folder / "data.npz", x=x, y=y)
    args = ["train", "--data", folder / "data.npz", "--output", folder / "run", *TINY]
    assert cli.main([str(a) for a in args]) == 0
    return folder / "run" / "model.keras"


@pytest.fixture
def call(capsys):
    """Runs the command in this process; returns (status, stdout, stderr lines)."""

    def run(*args):
        status = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return status, captured.out, captured.err.splitlines()

    return run


def run_verb(call, verb, model, data, tmp_path, *more):
    """`verb` on `data`; train and predict write under tmp_path / "out"."""
    out = tmp_path / "out"
    if verb == "train":
        return call("train", "--data", data, "--output", out / "run", *TINY, *more)
    if verb == "evaluate":
        return call("evaluate", model, "--data", data, *more)
    return call("predict", model, "--data", data, "--output", out / "p.npz", *more)


def predict(call, model, data, out):
    """`predict` on `data`, which must succeed; returns the arrays of the .npz it writes."""
    status, _, err = call("predict", model, "--data", data, "--output", out)
    assert status == 0, err
    with np.load(out) as saved:
        return {key: saved[key] for key in saved.files}


def npz(**arrays):
    def write(path):
        np.savez(path / "data.npz", **arrays)
        return path / "data.npz"

    return write


def csv(text):
    def write(path):
        (path / "data.csv").write_text(text)
        return path / "data.csv"

    return write


def tfrecords(*examples):
    """A folder with one TFRecord file of `examples` (none: an empty file; None: no file)."""

    def write(path):
        (path / "records").mkdir()
        if examples != (None,):
            with tf.io.TFRecordWriter(str(path / "records" / "a.tfrecord")) as writer:
                for example in examples:
                    writer.write(example.SerializeToString())
        return path / "records"

    return write


def sequence_example(x_steps, y_steps, kind="float_list"):
    example = tf.train.SequenceExample()
    lists = example.feature_lists.feature_list
    lists["x"].SetInParent()  # the list exists even with no steps
    for values in x_steps:
        getattr(lists["x"].feature.add(), kind).value[:] = values
    for value in y_steps:
        lists["y"].feature.add().float_list.value.append(value)
    return example


def npy_named_npz(path):
    with open(path / "data.npz", "wb") as file:
        np.save(file, np.zeros((N, T, D)))
    return path / "data.npz"


X, Y = sequences()
NO_STEP = np.ones((N, T), bool)
NO_STEP[2] = False
HEADER = "sequence,step,a,b,y\n"

# (id, write the file, what the one line says, the verbs that refuse it)
REFUSED = [
    # an empty data set
    (
        "npz-no-sequences",
        npz(x=X[:0], y=Y[:0]),
        "holds no sequences (x has shape (0, 5, 2))",
        VERBS,
    ),
    ("csv-header-only", csv(HEADER), "holds a header but no rows", VERBS),
    ("csv-blank-rows", csv(HEADER + "\n\n"), "holds a header but no rows", VERBS),
    ("tfrecord-no-files", tfrecords(None), "holds no *.tfrecord files", VERBS),
    ("tfrecord-no-records", tfrecords(), "its TFRecord files hold no records", VERBS),
    # sequences of no steps (and steps of no features)
    (
        "npz-zero-steps",
        npz(x=X[:, :0], y=Y[:, :0]),
        "its sequences have no time steps (x has shape (6, 0, 2))",
        VERBS,
    ),
    (
        "npz-mask-all-false",
        npz(x=X, y=Y, mask=NO_STEP),
        "sequence 2 has no real step (its mask is all False); drop it or unmask a step",
        VERBS,
    ),
    (
        "npz-length-zero",
        npz(x=X, y=Y, lengths=[5, 5, 0, 5, 5, 5]),
        "lengths must be whole numbers in 1..5 (x's time steps), got 0 for sequence 2",
        VERBS,
    ),
    (
        "tfrecord-zero-steps",
        tfrecords(sequence_example([], [])),
        "a.tfrecord record 0: feature list 'x' has no steps",
        VERBS,
    ),
    (
        "npz-zero-features",  # TensorFlow (oneDNN) aborts the process on a model of no inputs
        npz(x=X[..., :0], y=Y),
        "x has no features per step (shape (6, 5, 0))",
        VERBS,
    ),
    # wrong dtypes
    ("npz-x-bool", npz(x=X > 0, y=Y), "x must hold numbers, got dtype bool", VERBS),
    ("npz-x-text", npz(x=X.astype(str), y=Y), "x must hold numbers, got dtype <U", VERBS),
    ("npz-x-complex", npz(x=X.astype("complex64"), y=Y), "got dtype complex64", VERBS),
    (
        "npz-x-objects",
        npz(x=np.array([X[0], X[1, :3]], dtype=object), y=Y),
        "x must hold numbers, got dtype object (Python objects, e.g. ragged sequences)",
        VERBS,
    ),
    (
        "npz-x-beyond-float32",  # Inf after the cast to float32
        npz(x=np.where(np.arange(D) == 1, 1e300, X.astype("float64")), y=Y),
        "x holds a value beyond float32's range (+-3.4e38) (first in sequence 0, step 0, "
        "feature x2)",
        VERBS,
    ),
    ("npz-y-bool", npz(x=X, y=Y > 0), "y must hold numbers, got dtype bool", VERBS[:2]),
    ("npz-mask-text", npz(x=X, y=Y, mask=NO_STEP.astype(str)), "mask must hold numbers", VERBS),
    (
        "npz-mask-two",
        npz(x=X, y=Y, mask=2 * NO_STEP),
        "mask must hold bool or 0/1, got 2 at sequence 0, step 0",
        VERBS,
    ),
    (
        "npz-lengths-text",
        npz(x=X, y=Y, lengths=np.array(["5"] * N)),
        "lengths must hold numbers, got dtype <U1",
        VERBS,
    ),
    (
        "npz-lengths-fraction",
        npz(x=X, y=Y, lengths=[5, 5, 2.5, 5, 5, 5]),
        "got 2.5 for sequence 2",
        VERBS,
    ),
    ("npy-not-npz", npy_named_npz, "is one .npy array, not an .npz of named arrays", VERBS),
    (
        "csv-text-value",
        csv(HEADER + "s,0,1,abc,2\n"),
        "data.csv line 2: column 'b' holds 'abc', not a number",
        VERBS,
    ),
    (
        "csv-beyond-float32",
        csv(HEADER + "s,7,1,-1e300,2\n"),
        "x holds a value beyond float32's range (+-3.4e38) (first in sequence s, step 7, "
        "feature b)",
        VERBS,
    ),
    (
        "tfrecord-int64",
        tfrecords(sequence_example([[1, 2], [3, 4]], [0.0, 1.0], kind="int64_list")),
        "record 0: feature list 'x' holds int64_list at step 0; it must hold float_list",
        VERBS,
    ),
    # wrong ranks and shapes
    (
        "npz-x-rank-2",
        npz(x=X[..., 0], y=Y),
        "x must have shape (n, time, features), got (6, 5)",
        VERBS,
    ),
    ("npz-x-rank-4", npz(x=X[..., None], y=Y), "got (6, 5, 2, 1)", VERBS),
    (
        "npz-y-shape",
        npz(x=X, y=Y[:, :3]),
        "y must have shape (n, time) = (6, 5), got (6, 3)",
        VERBS[:2],
    ),
    ("npz-y-two-targets", npz(x=X, y=np.stack([Y, Y], -1)), "got (6, 5, 2)", VERBS[:2]),
    (
        "npz-mask-shape",
        npz(x=X, y=Y, mask=NO_STEP[:, :3]),
        "mask must have shape (n, time) = (6, 5), got (6, 3)",
        VERBS,
    ),
    (
        "npz-lengths-shape",
        npz(x=X, y=Y, lengths=[5, 5]),
        "lengths must have shape (n,) = (6,), got (2,)",
        VERBS,
    ),
]


@pytest.mark.parametrize(
    "write, message, verbs", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_with_one_line_naming_file_and_problem(
    call, model, tmp_path, write, message, verbs
):
    data = write(tmp_path)
    for verb in verbs:
        status, _, err = run_verb(call, verb, model, data, tmp_path)
        assert status == 2 and len(err) == 1, (verb, err)
        assert err[0].startswith(f"tf-gradrnn {verb}: error: "), err[0]
        assert str(data) in err[0] and message in err[0], err[0]
    assert not (tmp_path / "out").exists()  # no run folder, no predictions


def test_empty_feature_column_list_is_refused(call, model, tmp_path):
    data = csv(HEADER + "s,0,1,2,3\n")(tmp_path)
    for verb in VERBS:
        status, _, err = run_verb(call, verb, model, data, tmp_path, "--feature-columns", ",")
        assert status == 2 and err == [
            f"tf-gradrnn {verb}: error: {data}: the list of feature columns is empty; "
            "set --feature-columns"
        ]


def test_integer_and_float16_x_are_cast(call, model, tmp_path):
    x = np.random.default_rng(1).integers(-3, 4, (N, T, D))
    outputs = {}
    for dtype in ("int64", "uint8", "float16", "float64"):
        values = x.astype(dtype) if dtype != "uint8" else (x + 3).astype(dtype)
        np.savez(tmp_path / f"{dtype}.npz", x=values)
        outputs[dtype] = predict(
            call, model, tmp_path / f"{dtype}.npz", tmp_path / f"{dtype}-p.npz"
        )
    for dtype in ("int64", "float16"):  # the same values as float64: the same predictions
        for key in ("y_pred", "h"):
            np.testing.assert_array_equal(outputs[dtype][key], outputs["float64"][key])
    assert np.isfinite(outputs["uint8"]["y_pred"]).all() and outputs["uint8"]["h"].shape == (N, 2)


def test_constant_target_reports_r2_as_undefined(call, model, tmp_path):
    x, _ = sequences()
    np.savez(tmp_path / "flat.npz", x=x, y=np.full((N, T), 0.5))
    status, out, err = call("evaluate", model, "--data", tmp_path / "flat.npz")
    assert status == 0, err
    assert "r2 n/a (constant target)" in out
    status, out, err = run_verb(call, "train", model, tmp_path / "flat.npz", tmp_path)
    assert status == 0, err
    assert "R^2 n/a (constant target) on the validation sequences" in out


def test_predict_ignores_the_target(call, model, tmp_path):
    x, y = sequences()
    np.savez(tmp_path / "x.npz", x=x)
    expected = predict(call, model, tmp_path / "x.npz", tmp_path / "expected.npz")
    for name, target in {
        "nan": np.full_like(y, np.nan),
        "wrong-shape": y[:, :2],
        "bool": y > 0,
        "objects": np.array([y[0], y[1, :2]], dtype=object),
    }.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=target)
        saved = predict(call, model, tmp_path / f"{name}.npz", tmp_path / f"{name}-p.npz")
        np.testing.assert_array_equal(saved["y_pred"], expected["y_pred"], err_msg=name)
        np.testing.assert_array_equal(saved["h"], expected["h"], err_msg=name)
    # A .csv target column may be blank or text: it is neither parsed nor a feature.
    rows = [f"s{i},{t},{x[i, t, 0]},{x[i, t, 1]},?" for i in range(N) for t in range(T)]
    (tmp_path / "x.csv").write_text(HEADER + "\n".join(rows) + "\n")
    saved = predict(call, model, tmp_path / "x.csv", tmp_path / "csv-p.npz")
    np.testing.assert_allclose(saved["y_pred"], expected["y_pred"], rtol=1e-6)
    status, _, err = call("evaluate", model, "--data", tmp_path / "x.csv")
    assert status == 2 and "line 2: column 'y' holds '?', not a number" in err[0]


def test_target_of_shape_n_t_1_and_a_float_mask_are_accepted(call, model, tmp_path):
    x, y = sequences()
    mask = np.arange(T) < np.array([5, 3, 1, 5, 2, 4])[:, None]
    np.savez(tmp_path / "plain.npz", x=x, y=y, mask=mask)
    np.savez(tmp_path / "other.npz", x=x, y=y[..., None], mask=mask.astype("float32"))
    metrics = []
    for name in ("plain", "other"):
        status, out, err = call("evaluate", model, "--data", tmp_path / f"{name}.npz")
        assert status == 0, err
        assert "6 sequences" in out and "lengths 1..5: 20 real steps" in out
        metrics.append(out.splitlines()[-1])
    assert metrics[0] == metrics[1] and metrics[0].startswith("mse ")


def test_nan_at_a_masked_step_is_not_an_error(call, model, tmp_path):
    x, _ = sequences()
    mask = np.arange(T) < np.array([5, 3, 1, 5, 2, 4])[:, None]
    np.savez(tmp_path / "clean.npz", x=np.where(mask[..., None], x, 0), mask=mask)
    np.savez(tmp_path / "nan.npz", x=np.where(mask[..., None], x, np.nan), mask=mask)
    clean = predict(call, model, tmp_path / "clean.npz", tmp_path / "clean-p.npz")
    nan = predict(call, model, tmp_path / "nan.npz", tmp_path / "nan-p.npz")
    np.testing.assert_array_equal(nan["y_pred"], clean["y_pred"])
    np.testing.assert_array_equal(nan["h"], clean["h"])
    assert np.all(nan["y_pred"][~mask] == 0) and np.isfinite(nan["h"]).all()


LONG, PREFIX = 10**5, 1000
MAX_BYTES_PER_STEP = 1024  # as tests/test_hostile_inputs.py allows the library


def test_predict_a_very_long_sequence_in_bounded_memory(call, model, tmp_path):
    x = np.random.default_rng(2).standard_normal((1, LONG, D)).astype("float32")
    np.savez(tmp_path / "long.npz", x=x)
    np.savez(tmp_path / "prefix.npz", x=x[:, :PREFIX])
    prefix = predict(call, model, tmp_path / "prefix.npz", tmp_path / "prefix-p.npz")
    exact = reset_peak()  # the peak RSS of this process becomes its RSS now
    before = resident_mb()
    saved = predict(call, model, tmp_path / "long.npz", tmp_path / "long-p.npz")
    # Where the peak cannot be reset, the RSS after the call: a lower bound of the peak.
    growth = (resident_mb("VmHWM") if exact else resident_mb()) - before
    assert saved["y_pred"].shape == (1, LONG) and saved["h"].shape == (1, 2)
    assert np.isfinite(saved["y_pred"]).all() and np.isfinite(saved["h"]).all()
    # The first steps do not depend on what follows them.
    np.testing.assert_allclose(saved["y_pred"][:, :PREFIX], prefix["y_pred"], rtol=1e-5, atol=1e-6)
    assert growth * 2**20 / LONG < MAX_BYTES_PER_STEP, f"{growth:.0f} MB for {LONG} steps"
