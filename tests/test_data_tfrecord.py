"""The TFRecord folder format: which files are read, sequence ids, and read errors."""

import numpy as np
import pytest
import tensorflow as tf

from tf_gradrnn.cli import data as data_lib

X = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
Y = np.ones((2, 3), "float32")


def refused(path, *messages, **options):
    with pytest.raises(data_lib.DataError) as error:
        data_lib.load(path, **options)
    text = str(error.value)
    assert all(m in text for m in messages) and str(path) in text and "\n" not in text, text


def example_with_id(set_id):
    example = tf.train.SequenceExample()
    lists = example.feature_lists.feature_list
    lists["x"].feature.add().float_list.value[:] = [1.0, 2.0]
    lists["y"].feature.add().float_list.value.append(0.0)
    set_id(example.context.feature["id"])
    return example


def test_only_visible_files_ending_in_tfrecord_are_read(tmp_path):
    data_lib.write_tfrecord(tmp_path / "a.tfrecord", X[:1], Y[:1], ids=["a"])
    with tf.io.TFRecordWriter(str(tmp_path / "b.tfrecord.gz"), "GZIP") as writer:
        example = tf.train.SequenceExample()
        example.context.feature["id"].bytes_list.value.append(b"b")
        for t in range(3):
            example.feature_lists.feature_list["x"].feature.add().float_list.value[:] = X[1, t]
            example.feature_lists.feature_list["y"].feature.add().float_list.value.append(1.0)
        writer.write(example.SerializeToString())
    for name in ("a.tfrecord.bak", ".tmp-c.tfrecord", ".d.tfrecord", "e.tfrecords.txt"):
        (tmp_path / name).write_bytes(b"not a TFRecord file")
    data = data_lib.load(tmp_path)
    assert data.ids == ["a", "b"] and not data.named
    np.testing.assert_array_equal(data.x, X)


@pytest.mark.parametrize(
    "set_id, message",
    [
        (lambda f: f.bytes_list.value.append(b"\xff\xfe"), "context feature 'id' is not UTF-8"),
        (
            lambda f: f.int64_list.value.append(7),
            "context feature 'id' must hold one bytes value (the sequence's name), got int64_list",
        ),
        (lambda f: f.bytes_list.SetInParent(), "got bytes_list of 0 values"),
        (lambda f: f.bytes_list.value.extend([b"a", b"b"]), "got bytes_list of 2 values"),
    ],
    ids=["not-utf8", "int64", "empty", "two"],
)
def test_a_bad_sequence_id_is_refused(tmp_path, set_id, message):
    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as writer:
        writer.write(example_with_id(set_id).SerializeToString())
    refused(tmp_path, "a.tfrecord record 0: context feature 'id'", message)


def test_a_damaged_file_is_refused_without_tensorflows_function_names(tmp_path):
    data_lib.write_tfrecord(tmp_path / "a.tfrecord", X, Y)
    whole = (tmp_path / "a.tfrecord").read_bytes()
    (tmp_path / "a.tfrecord").write_bytes(whole[: len(whole) - 10])
    with pytest.raises(data_lib.DataError) as error:
        data_lib.load(tmp_path)
    text = str(error.value)
    assert text.startswith(f"cannot read {tmp_path / 'a.tfrecord'}: truncated record at "), text
    assert "function_node" not in text and "[Op:" not in text and "\n" not in text


def test_the_feature_count_is_checked_against_the_model_at_the_first_record(tmp_path):
    data_lib.write_tfrecord(tmp_path / "a.tfrecord", X, Y)
    refused(
        tmp_path,
        "a.tfrecord record 0: 2 features per step, the model was trained on 3 (u, v, w)",
        expected_features=["u", "v", "w"],
    )
    assert data_lib.load(tmp_path, expected_features=["u", "v"]).features == 2
