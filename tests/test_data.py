"""Data loading, padding and masks: every format gives the same arrays, and padded steps change
neither the state nor the loss."""

import numpy as np
import pytest
import tensorflow as tf

from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import training

N, T, D = 5, 6, 2
LENGTHS = np.array([6, 3, 4, 1, 5])


def ragged():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype("float32")
    y = rng.standard_normal((N, T)).astype("float32")
    mask = np.arange(T) < LENGTHS[:, None]
    return np.where(mask[..., None], x, 0), np.where(mask, y, 0), mask


def write_csv(path, x, y, mask, header="sequence,step,x1,x2,y", order=None):
    rows = [(i, t) for i in range(len(x)) for t in np.flatnonzero(mask[i])]
    lines = [f"s{i},{t},{x[i, t, 0]},{x[i, t, 1]},{y[i, t]}" for i, t in rows]
    order = range(len(lines)) if order is None else order
    path.write_text(header + "\n" + "\n".join(lines[k] for k in order) + "\n")


def test_every_format_loads_the_same_arrays(tmp_path):
    x, y, mask = ragged()
    np.savez(tmp_path / "lengths.npz", x=x, y=y, lengths=LENGTHS)
    np.savez(tmp_path / "mask.npz", x=x, y=y, mask=mask.astype("int8"))
    # Rows in any order: each sequence's rows are sorted by the time column.
    order = np.random.default_rng(1).permutation(int(mask.sum()))
    write_csv(tmp_path / "data.csv", x, y, mask, order=order)
    (tmp_path / "records").mkdir()
    data_lib.write_tfrecord(tmp_path / "records" / "a.tfrecord", x[:2], y[:2], mask[:2])
    data_lib.write_tfrecord(tmp_path / "records" / "b.tfrecord", x[2:], y[2:], mask[2:])
    for name in ("lengths.npz", "mask.npz", "data.csv", "records"):
        data = data_lib.load(tmp_path / name)
        if name == "data.csv":  # sequences come in the order of their first row
            first_rows = dict.fromkeys(f"s{i}" for i, _ in np.argwhere(mask)[order])
            assert data.ids == list(first_rows)
            data = data._replace(**{k: getattr(data, k)[np.argsort(data.ids)] for k in "xy"})
            data = data._replace(mask=data.mask[np.argsort(data.ids)])
        np.testing.assert_array_equal(data.mask, mask, err_msg=name)
        np.testing.assert_allclose(data.x, x, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(data.y, y, rtol=1e-6, err_msg=name)
        assert data.x.dtype == data.y.dtype == np.float32


def test_csv_columns_time_order_and_no_target(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("run,t,a,b,c,target\nr1,10,1,2,3,0.5\nr1,9,4,5,6,0.25\nr2,0,7,8,9,1\n")
    columns = dict(id_column="run", time_column="t", target_column="target")
    data = data_lib.load(path, feature_columns=["c", "a"], **columns)
    assert data.feature_names == ["c", "a"]
    np.testing.assert_array_equal(data.x[0], [[6, 4], [3, 1]])  # t = 9 before t = 10
    np.testing.assert_array_equal(data.y, [[0.25, 0.5], [1, 0]])
    assert data.steps == [["9", "10"], ["0"]]
    path.write_text("run,t,a\nr1,0,1\n")
    assert data_lib.load(path, target=False, **columns).y is None


def test_padded_values_are_zeroed_even_when_nan(tmp_path):
    x, y, mask = ragged()
    x[~mask], y[~mask] = np.nan, np.inf
    np.savez(tmp_path / "data.npz", x=x, y=y, mask=mask)
    data = data_lib.load(tmp_path / "data.npz")
    assert np.all(data.x[~mask] == 0) and np.all(data.y[~mask] == 0)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.with_suffix(".npz").write_bytes(b"not a zip"), "cannot read"),
        (lambda p: p.with_suffix(".txt").write_text("x"), "unknown data format"),
        (lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((2, 3))), "x must have shape"),
        (lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((2, 3, 1))), "no array 'y'"),
        (lambda p: p.with_suffix(".csv").write_text("sequence,step,a\n1,0,2\n"), "no target"),
        (lambda p: p.with_suffix(".csv").write_text("sequence,a,y\n1,0,2\n"), "no time column"),
        (lambda p: p.with_suffix(".csv").write_text("sequence,step,a,y\n1,0,b,2\n"), "'b'"),
        (lambda p: p.with_suffix(".csv").write_text("sequence,step,a,y\n1,0,nan,2\n"), "nan"),
        (
            lambda p: p.with_suffix(".csv").write_text("sequence,step,a,y\n1,0,1,2\n1,0,1,2\n"),
            "step 0 twice",
        ),
    ],
    ids=[
        "missing",
        "corrupt-npz",
        "suffix",
        "npz-rank",
        "npz-no-y",
        "csv-no-target",
        "csv-no-time",
        "csv-text",
        "csv-nan",
        "csv-duplicate-step",
    ],
)
def test_bad_files_raise_one_line_naming_the_problem(tmp_path, write, message):
    write(tmp_path / "data")
    path = next(tmp_path.iterdir(), tmp_path / "data.npz")
    with pytest.raises(data_lib.DataError, match=message) as error:
        data_lib.load(path)
    assert "\n" not in str(error.value) and str(path.name) in str(error.value)


def test_nan_or_inf_at_a_real_step_names_the_sequence_and_step(tmp_path):
    x, y, mask = ragged()
    y[2, 3] = np.inf
    np.savez(tmp_path / "data.npz", x=x, y=y, mask=mask)
    with pytest.raises(
        data_lib.DataError, match=r"y holds NaN or Inf \(first in sequence 2, step 3"
    ):
        data_lib.load(tmp_path / "data.npz")


def test_tfrecord_with_steps_of_different_sizes_is_refused(tmp_path):
    example = tf.train.SequenceExample()
    for values in ([1.0, 2.0], [3.0]):
        example.feature_lists.feature_list["x"].feature.add().float_list.value[:] = values
        example.feature_lists.feature_list["y"].feature.add().float_list.value.append(0.0)
    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(data_lib.DataError, match="record 0: feature list 'x' must hold the same"):
        data_lib.load(tmp_path)


def test_padded_steps_change_neither_state_nor_loss():
    x, y, mask = ragged()
    layer = training.build_layer({"units": 3, "hidden_units": [8], "activation": "tanh"})
    training_model, model = training.wrap(layer, D)
    states = training.sequence_model(model)
    garbage_x = np.where(mask[..., None], x, 7.0).astype("float32")
    garbage_y = np.where(mask, y, -5.0).astype("float32")
    y_pad, h_pad = states.predict({"x": garbage_x, "mask": mask}, verbose=0)
    for i, length in enumerate(LENGTHS):  # each sequence alone, unpadded
        y_i, h_i = states.predict({"x": x[i : i + 1, :length], "mask": mask[i : i + 1, :length]})
        np.testing.assert_allclose(y_pad[i, :length, 0], y_i[0, :, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h_pad[i], h_i[0], rtol=1e-5, atol=1e-6)

    training.compile_for_training(training_model, {"learning_rate": 1e-3, "jit": False})
    loss_fn = training_model.loss

    def loss_and_grads(x_in, y_in):
        with tf.GradientTape() as tape:
            pred = training_model({"x": x_in, "mask": mask})
            loss = loss_fn(y_in[..., None], pred, sample_weight=mask.astype("float32"))
        return loss, tape.gradient(loss, training_model.trainable_weights)

    loss_clean, grads_clean = loss_and_grads(x, y)
    loss_garbage, grads_garbage = loss_and_grads(garbage_x, garbage_y)
    pred = training_model({"x": x, "mask": mask}).numpy()[..., 0]
    np.testing.assert_allclose(loss_clean, np.mean((pred - y)[mask] ** 2), rtol=1e-5)
    np.testing.assert_allclose(loss_garbage, loss_clean, rtol=1e-6)
    for clean, garbage in zip(grads_clean, grads_garbage, strict=True):
        np.testing.assert_allclose(garbage, clean, rtol=1e-5, atol=1e-7)


def test_a_masked_step_inside_a_sequence_keeps_the_state():
    x, _, _ = ragged()
    layer = training.build_layer({"units": 3, "hidden_units": [8], "activation": "tanh"})
    states = training.sequence_model(training.wrap(layer, D)[1])
    hole = np.ones((1, T), bool)
    hole[0, 2] = False
    y_hole, h_hole = states.predict({"x": x[:1], "mask": hole}, verbose=0)
    kept = np.delete(x[:1], 2, axis=1)
    y_kept, h_kept = states.predict({"x": kept, "mask": np.ones((1, T - 1), bool)}, verbose=0)
    np.testing.assert_allclose(np.delete(y_hole, 2, axis=1), y_kept, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_hole, h_kept, rtol=1e-5, atol=1e-6)


def test_each_epoch_order_depends_on_seed_and_epoch_only():
    x, y, mask = ragged()
    data = data_lib.SequenceData(x, y, mask, list("abcde"), [], ["x1", "x2"], "test")
    indices = np.arange(N)

    def first_x(first_epoch, seed=0):
        dataset = data_lib.training_dataset(data, indices, 2, seed, first_epoch, 4)
        return [batch[0]["x"].numpy()[:, 0, 0].tolist() for batch in dataset]

    everything = first_x(0)
    assert len(everything) == 4 * 3  # 3 batches of 2, 2, 1 sequences per epoch
    assert first_x(2) == everything[6:]  # a resumed run sees the same batches
    assert everything[:3] != everything[3:6]  # reshuffled every epoch
    assert first_x(0, seed=1) != everything
    elements = next(iter(data_lib.training_dataset(data, indices, 5, 0, 0, 1)))
    np.testing.assert_array_equal(elements[2], elements[0]["mask"].numpy().astype("float32"))


def test_split_is_seeded_and_refuses_empty_parts():
    train, val = data_lib.split(10, 0.2, seed=3)
    assert len(val) == 2 and sorted([*train, *val]) == list(range(10))
    np.testing.assert_array_equal(data_lib.split(10, 0.2, seed=3)[1], val)
    assert len(data_lib.split(10, 0.0, seed=3)[1]) == 0
    with pytest.raises(data_lib.DataError, match="leaves 0 of 2 sequences for validation"):
        data_lib.split(2, 0.2, seed=0)
