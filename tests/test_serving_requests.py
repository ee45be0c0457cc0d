"""TF Serving requests answered locally: same numbers as the signatures, TF Serving's JSON rules,
and one clear error per bad request."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_gradrnn.serving import (
    InvalidRequestError,
    predict_request,
    rest_request_body,
    serve_grpc,
    serve_rest,
)

FEATURES, UNITS, BATCH, TIME = 3, 4, 2, 5


def _export(path, dtype, names=("serving_default", "sequence", "step", "readout")):
    """A tiny tanh RNN exported with the signatures and tensor names of `export.py`.

    Signatures: serving_default x -> y, h, h_seq; sequence x, h0 -> y, h, h_seq;
    step x_t, h -> y_t, h_next; readout h -> y (one input, one output, for the bare JSON forms).
    """
    rng = np.random.default_rng(0)
    w_in = tf.Variable(0.5 * rng.standard_normal((FEATURES, UNITS)), dtype=dtype, name="w_in")
    w_rec = tf.Variable(0.5 * rng.standard_normal((UNITS, UNITS)), dtype=dtype, name="w_rec")
    w_out = tf.Variable(rng.standard_normal(UNITS), dtype=dtype, name="w_out")

    def cell(x_t, h):
        return tf.tanh(x_t @ w_in + h @ w_rec)

    def step(x_t, h):
        h_next = cell(x_t, h)
        return {"y_t": tf.reduce_sum(h_next * w_out, -1), "h_next": h_next}

    def sequence(x, h0):
        # x: (batch, time, features) -> scan over time-major steps -> h_seq: (batch, time, units)
        states = tf.scan(lambda h, x_t: cell(x_t, h), tf.transpose(x, [1, 0, 2]), initializer=h0)
        h_seq = tf.transpose(states, [1, 0, 2])
        return {"y": tf.reduce_sum(h_seq * w_out, -1), "h": h_seq[:, -1], "h_seq": h_seq}

    def serving_default(x):
        return sequence(x, tf.zeros([tf.shape(x)[0], UNITS], dtype))

    def readout(h):
        return {"y": tf.reduce_sum(h * w_out, -1)}

    def spec(name, *shape):
        return tf.TensorSpec([None, *shape], dtype, name=name)

    endpoints = {
        "serving_default": (serving_default, [spec("x", None, FEATURES)]),
        "sequence": (sequence, [spec("x", None, FEATURES), spec("h0", UNITS)]),
        "step": (step, [spec("x_t", FEATURES), spec("h", UNITS)]),
        "readout": (readout, [spec("h", UNITS)]),
    }
    archive = keras.export.ExportArchive()
    for variable in (w_in, w_rec, w_out):
        archive.track(variable)
    for name in names:
        function, signature = endpoints[name]
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return tf.saved_model.load(str(path))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("model32"), tf.float32)


@pytest.fixture(scope="module")
def model64(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("model64"), tf.float64, names=("step",))


def _inputs(dtype=np.float32, batch=BATCH):
    rng = np.random.default_rng(1)
    arrays = {
        "x": rng.standard_normal((batch, TIME, FEATURES)),
        "h0": rng.standard_normal((batch, UNITS)),
        "x_t": rng.standard_normal((batch, FEATURES)),
        "h": rng.standard_normal((batch, UNITS)),
    }
    return {name: array.astype(dtype) for name, array in arrays.items()}


SIGNATURE_INPUTS = {
    "serving_default": ("x",),
    "sequence": ("x", "h0"),
    "step": ("x_t", "h"),
    "readout": ("h",),
}
OUTPUT_SHAPES = {  # without the batch dimension
    "serving_default": {"y": (TIME,), "h": (UNITS,), "h_seq": (TIME, UNITS)},
    "sequence": {"y": (TIME,), "h": (UNITS,), "h_seq": (TIME, UNITS)},
    "step": {"y_t": (), "h_next": (UNITS,)},
    "readout": {"y": ()},
}


def _request_inputs(signature, dtype=np.float32):
    arrays = _inputs(dtype)
    return {name: arrays[name] for name in SIGNATURE_INPUTS[signature]}


def _direct(saved_model, signature, inputs):
    outputs = saved_model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


# --- Same numbers as calling the signature ------------------------------------------------------


@pytest.mark.parametrize("signature", list(SIGNATURE_INPUTS), ids=list(SIGNATURE_INPUTS))
def test_grpc_matches_signature(model, signature):
    inputs = _request_inputs(signature)
    response = serve_grpc(model, predict_request(inputs, signature_name=signature))
    expected = _direct(model, signature, inputs)
    assert response.model_spec.name == "tf_gradrnn"
    assert response.model_spec.signature_name == signature
    assert sorted(response.outputs) == sorted(OUTPUT_SHAPES[signature])
    for name, shape in OUTPUT_SHAPES[signature].items():
        proto = response.outputs[name]
        assert proto.dtype == tf.float32.as_datatype_enum
        assert len(proto.float_val) == np.prod((BATCH, *shape))  # AsProtoField, as the server
        np.testing.assert_array_equal(tf.make_ndarray(proto), expected[name])


@pytest.mark.parametrize("signature", list(SIGNATURE_INPUTS), ids=list(SIGNATURE_INPUTS))
def test_rest_row_format_matches_signature(model, signature):
    inputs = _request_inputs(signature)
    answer = serve_rest(model, json.dumps(rest_request_body(inputs, signature)))
    expected = _direct(model, signature, inputs)
    predictions = answer["predictions"]
    assert list(answer) == ["predictions"] and len(predictions) == BATCH
    shapes = OUTPUT_SHAPES[signature]
    for i, prediction in enumerate(predictions):
        if len(shapes) == 1:  # a single output: the bare value per example
            prediction = {next(iter(shapes)): prediction}
        assert sorted(prediction) == sorted(shapes)
        for name, shape in shapes.items():
            value = np.asarray(prediction[name], np.float32)
            assert value.shape == shape
            # The decimals written like WriteDecimal read back to the very same float32.
            np.testing.assert_array_equal(value, expected[name][i])


@pytest.mark.parametrize("signature", list(SIGNATURE_INPUTS), ids=list(SIGNATURE_INPUTS))
def test_rest_columnar_format_matches_signature(model, signature):
    inputs = _request_inputs(signature)
    answer = serve_rest(model, json.dumps(rest_request_body(inputs, signature, columnar=True)))
    expected = _direct(model, signature, inputs)
    outputs = answer["outputs"]
    shapes = OUTPUT_SHAPES[signature]
    if len(shapes) == 1:  # a single output: the bare value
        outputs = {next(iter(shapes)): outputs}
    assert sorted(outputs) == sorted(shapes)
    for name, shape in shapes.items():
        value = np.asarray(outputs[name], np.float32)
        assert value.shape == (BATCH, *shape)
        np.testing.assert_array_equal(value, expected[name])


def test_step_request_continues_a_sequence(model):
    # Two step requests from h = 0 give the first two states of a serving_default request.
    x = _inputs()["x"]
    h_seq = tf.make_ndarray(serve_grpc(model, predict_request({"x": x})).outputs["h_seq"])
    h = np.zeros((BATCH, UNITS), np.float32)
    for t in range(2):
        request = predict_request({"x_t": x[:, t], "h": h}, signature_name="step")
        h = tf.make_ndarray(serve_grpc(model, request).outputs["h_next"])
        np.testing.assert_allclose(h, h_seq[:, t], rtol=1e-5, atol=1e-6)
    answer = serve_rest(model, rest_request_body({"x_t": x[:, 0], "h": h}, "step"))
    assert [sorted(p) for p in answer["predictions"]] == [["h_next", "y_t"]] * BATCH
    assert isinstance(answer["predictions"][0]["y_t"], float)


def test_float64_model(model64):
    inputs = _request_inputs("step", np.float64)
    expected = _direct(model64, "step", inputs)
    response = serve_grpc(model64, predict_request(inputs, signature_name="step"))
    assert len(response.outputs["h_next"].double_val) == BATCH * UNITS
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["h_next"]), expected["h_next"])
    answer = serve_rest(model64, json.dumps(rest_request_body(inputs, "step", columnar=True)))
    np.testing.assert_array_equal(np.asarray(answer["outputs"]["y_t"]), expected["y_t"])
    float32_request = predict_request(_request_inputs("step"), signature_name="step")
    with pytest.raises(InvalidRequestError, match="'h' .*expected a float64.*a float32"):
        serve_grpc(model64, float32_request)


def test_request_builders():
    inputs = _request_inputs("sequence")
    request = predict_request(inputs, "sequence", model_name="rnn", output_filter=["h"])
    assert (request.model_spec.name, request.model_spec.signature_name) == ("rnn", "sequence")
    assert list(request.output_filter) == ["h"]
    assert request.inputs["x"].dtype == tf.float32.as_datatype_enum
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["x"]), inputs["x"])
    rows = rest_request_body(inputs, "sequence")
    assert rows["signature_name"] == "sequence" and len(rows["instances"]) == BATCH
    assert sorted(rows["instances"][0]) == ["h0", "x"]
    columns = rest_request_body(inputs, "sequence", columnar=True)
    assert np.shape(columns["inputs"]["x"]) == (BATCH, TIME, FEATURES)
    for body in (rows, columns):
        assert json.loads(json.dumps(body)) == body  # plain lists and floats


def test_bare_json_forms_for_a_single_input(model):
    # TF Serving also takes `"instances": <list>` and `"inputs": <list>` with a single input.
    h = _inputs()["h"]
    expected = _direct(model, "readout", {"h": h})["y"]
    for body in ({"instances": h.tolist()}, {"inputs": h.tolist()}):
        answer = serve_rest(model, {"signature_name": "readout", **body})
        np.testing.assert_array_equal(np.float32(next(iter(answer.values()))), expected)
    answer = serve_rest(model, {"signature_name": "", "instances": _inputs()["x"].tolist()})
    assert np.shape(answer["predictions"][0]["h_seq"]) == (TIME, UNITS)


def test_json_numbers_are_cast_like_tf_serving(model):
    # Integers, NaN and Infinity are numbers for a float input; the answer keeps NaN.
    h = [[1, 0, -2, 0], [float("nan"), 0.5, 0, float("inf")]]
    answer = serve_rest(model, json.dumps({"signature_name": "readout", "inputs": {"h": h}}))
    expected = _direct(model, "readout", {"h": np.array(h, np.float32)})["y"]
    np.testing.assert_array_equal(np.float32(answer["outputs"]), expected)
    assert np.isnan(answer["outputs"][1])


def test_rest_floats_are_written_like_tf_serving(model):
    # WriteDecimal: "%g" (6 digits) if it reads back to the same float32, else 9 digits.
    answer = serve_rest(model, rest_request_body(_request_inputs("sequence"), "sequence"))
    values = np.ravel([p["h_seq"] for p in answer["predictions"]]).tolist()
    for value in values:
        six = f"{value:.6g}"
        assert value == float(six if np.float32(six) == np.float32(value) else f"{value:.9g}")
    assert any(len(repr(value)) > 10 for value in values)  # most need 9 digits, none 17


def test_grpc_output_filter(model):
    request = predict_request(_request_inputs("sequence"), "sequence", output_filter=["h"])
    assert list(serve_grpc(model, request).outputs) == ["h"]
    request = predict_request(_request_inputs("sequence"), "sequence", output_filter=["c"])
    with pytest.raises(InvalidRequestError, match="output 'c'.*'h', 'h_seq', 'y'"):
        serve_grpc(model, request)


# --- Bad requests: one clear error each ---------------------------------------------------------


def _grpc(model, inputs, signature="sequence"):
    return serve_grpc(model, predict_request(inputs, signature_name=signature))


def _columns(model, inputs, signature="sequence"):
    return serve_rest(model, {"signature_name": signature, "inputs": inputs})


def _rows(model, instances, signature="sequence"):
    return serve_rest(model, {"signature_name": signature, "instances": instances})


def _lists(signature="sequence"):
    return {name: value.tolist() for name, value in _request_inputs(signature).items()}


@pytest.mark.parametrize(
    "send",
    [
        lambda m: _grpc(m, {"x": _inputs()["x"]}),
        lambda m: _columns(m, {"x": _lists()["x"]}),
        lambda m: _rows(m, [{"x": _lists()["x"][0]}]),
    ],
    ids=["grpc", "rest-columnar", "rest-row"],
)
def test_missing_input(model, send):
    with pytest.raises(InvalidRequestError, match="missing input 'h0'.*signature 'sequence'"):
        send(model)


@pytest.mark.parametrize(
    "send",
    [
        lambda m: _grpc(m, {**_request_inputs("sequence"), "c0": _inputs()["h0"]}),
        lambda m: _columns(m, {**_lists(), "c0": _lists()["h0"]}),
        lambda m: _rows(m, [{"x": _lists()["x"][0], "h0": _lists()["h0"][0], "c0": [0.0]}]),
    ],
    ids=["grpc", "rest-columnar", "rest-row"],
)
def test_unexpected_input(model, send):
    with pytest.raises(InvalidRequestError, match="unexpected input 'c0'.*expected inputs 'h0'"):
        send(model)


@pytest.mark.parametrize(
    "value, received",
    [(np.full((BATCH, TIME, FEATURES), "a"), "string"), (np.ones((2, 5, 3), np.int32), "int32")],
    ids=["string", "int32"],
)
def test_grpc_wrong_dtype(model, value, received):
    message = f"input 'x' .*expected a float32 tensor, received a {received} tensor"
    with pytest.raises(InvalidRequestError, match=message):
        _grpc(model, {"x": value}, "serving_default")


def test_grpc_tensor_parsing_error(model):
    request = predict_request({"h": [1.0, 2.0]}, signature_name="readout")
    request.inputs["h"].tensor_shape.CopyFrom(tf.TensorShape([BATCH, UNITS]).as_proto())
    with pytest.raises(InvalidRequestError, match="'h': tensor parsing error.*\\(2, 4\\)"):
        serve_grpc(model, request)


def test_grpc_short_value_list_is_padded_like_tf_serving(model):
    # Tensor::FromProto repeats the last of too few repeated values (tf.make_ndarray cannot).
    request = predict_request({}, signature_name="readout")
    request.inputs["h"].dtype = tf.float32.as_datatype_enum
    request.inputs["h"].tensor_shape.CopyFrom(tf.TensorShape([BATCH, UNITS]).as_proto())
    request.inputs["h"].float_val.extend([1.0, 2.0])
    h = np.array([[1, 2, 2, 2], [2, 2, 2, 2]], np.float32)
    y = tf.make_ndarray(serve_grpc(model, request).outputs["y"])
    np.testing.assert_array_equal(y, _direct(model, "readout", {"h": h})["y"])


@pytest.mark.parametrize("value", ["0.5", True, None], ids=["string", "boolean", "null"])
def test_rest_wrong_json_type(model, value):
    x = _lists("serving_default")["x"]
    x[1][2][0] = value
    with pytest.raises(InvalidRequestError, match="input 'x'.*expected JSON numbers for a float32"):
        _columns(model, {"x": x}, "serving_default")


def test_rest_lossy_number(model):
    with pytest.raises(InvalidRequestError, match="'h'.*1e\\+39 to float32 without loss"):
        _columns(model, {"h": [[1e39, 0, 0, 0]]}, "readout")


@pytest.mark.parametrize(
    "send",
    [
        lambda m: _grpc(m, {"x": _inputs()["x"][0]}, "serving_default"),
        lambda m: _columns(m, {"x": _lists()["x"][0]}, "serving_default"),
        lambda m: _rows(m, _lists()["x"][0], "serving_default"),
    ],
    ids=["grpc", "rest-columnar", "rest-row"],
)
def test_wrong_rank(model, send):
    with pytest.raises(InvalidRequestError, match="'x'.*expected rank 3.*received rank 2"):
        send(model)


@pytest.mark.parametrize(
    "send",
    [
        lambda m: _grpc(m, {"x": np.zeros((BATCH, TIME, 5), np.float32)}, "serving_default"),
        lambda m: _columns(m, {"x": np.zeros((BATCH, TIME, 5)).tolist()}, "serving_default"),
    ],
    ids=["grpc", "rest-columnar"],
)
def test_wrong_feature_size(model, send):
    with pytest.raises(InvalidRequestError, match="'x'.*dimension 2 of size 3.*\\(2, 5, 5\\)"):
        send(model)


def test_rest_ragged_list(model):
    x = _lists("serving_default")["x"]
    x[1] = x[1][:-1]  # the second sequence is one step shorter
    with pytest.raises(InvalidRequestError, match="input 'x' in 'inputs' is a ragged list"):
        _columns(model, {"x": x}, "serving_default")
    x[1] = [[0.0, [1.0], 2.0]] * TIME
    with pytest.raises(InvalidRequestError, match="input 'x' in 'inputs' is a ragged list"):
        _columns(model, {"x": x}, "serving_default")


def test_rest_rows_of_different_shapes(model):
    x = _lists("serving_default")["x"]
    rows = [{"x": x[0]}, {"x": x[1][:-1]}]  # items 0 and 1 have different time lengths
    with pytest.raises(InvalidRequestError, match="'x' in item 1 of 'instances' has shape"):
        _rows(model, rows, "serving_default")


def test_rest_rows_plain_list_for_several_inputs(model):
    with pytest.raises(InvalidRequestError, match="plain list.*several inputs \\('h', 'x_t'\\)"):
        _rows(model, [[0.0] * FEATURES], "step")


def test_rest_rows_mixing_objects_and_values(model):
    x = _lists("serving_default")["x"]
    with pytest.raises(InvalidRequestError, match="item 1 of 'instances' is a value/list"):
        _rows(model, [{"x": x[0]}, x[1]], "serving_default")


def test_row_body_needs_one_batch_size():
    inputs = {**_request_inputs("sequence"), "h0": np.zeros((BATCH + 1, UNITS), np.float32)}
    with pytest.raises(InvalidRequestError, match="input 'h0' has batch size 3 but input 'x'"):
        rest_request_body(inputs, "sequence")


def test_inputs_with_different_batch_sizes(model):
    inputs = {**_request_inputs("step"), "h": np.zeros((BATCH + 1, UNITS), np.float32)}
    message = "'step' refused inputs h \\(3, 4\\), x_t \\(2, 3\\): Incompatible shapes"
    with pytest.raises(InvalidRequestError, match=message):
        _grpc(model, inputs, "step")


@pytest.mark.parametrize(
    "send",
    [
        lambda m: serve_grpc(m, predict_request({"x": _inputs()["x"]}, signature_name="train")),
        lambda m: serve_rest(m, {"signature_name": "train", "inputs": _lists()}),
    ],
    ids=["grpc", "rest"],
)
def test_unknown_signature(model, send):
    with pytest.raises(InvalidRequestError, match="'train' not found.*'sequence', 'serving_def"):
        send(model)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [[0.0]], "inputs": [[0.0]]}, "exactly one of 'instances'"),
        ({"signature_name": "readout"}, "exactly one of 'instances'"),
        ({"instances": []}, "'instances' must be a non-empty list"),
        ({"inputs": np.zeros((BATCH, TIME, FEATURES))}, "not JSON"),
        ('{"inputs": [1.0,', "not JSON"),
        ("[1.0]", "must be a JSON object"),
        ({"signature_name": 1, "inputs": [1.0]}, "'signature_name' must be a string"),
    ],
    ids=["both-formats", "no-format", "empty-instances", "numpy", "bad-json", "list", "name"],
)
def test_malformed_rest_body(model, body, message):
    with pytest.raises(InvalidRequestError, match=message):
        serve_rest(model, body)


# --- Without the `serving` extra ----------------------------------------------------------------


def test_export_and_rest_helpers_work_without_tensorflow_serving_api(tmp_path):
    # A fresh process where tensorflow_serving cannot be imported, as without the extra.
    script = textwrap.dedent(
        f"""
        import sys, warnings
        sys.modules["tensorflow_serving"] = None
        import keras, numpy as np, tensorflow as tf
        import tf_gradrnn
        from tf_gradrnn.serving import predict_request, rest_request_body, serve_rest

        layer = tf_gradrnn.GradientRNN(2, hidden_units=(4,))
        layer(np.zeros((1, 3, 2), "float32"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = tf_gradrnn.export_saved_model(layer, {str(tmp_path)!r})
        print("warned:", any("warm-up" in str(w.message) for w in caught))
        loaded = tf.saved_model.load(str(path))
        answer = serve_rest(loaded, rest_request_body({{"x": np.ones((1, 3, 2))}}))
        print("rest:", np.shape(answer["predictions"][0]["y"]))
        for call in (
            lambda: tf_gradrnn.export_saved_model(layer, {str(tmp_path)!r}, warmup=True),
            lambda: predict_request({{"x": np.ones((1, 3, 2))}}),
        ):
            try:
                call()
            except ImportError as error:
                print("error:", error)
        print("versions:", sorted(p.name for p in path.parent.iterdir()))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "warned: True" in lines and "rest: (3,)" in lines
    assert "versions: ['1']" in lines  # warmup=True failed before writing anything
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [
        "error: Writing TF Serving warm-up requests needs tensorflow-serving-api: "
        'pip install "tf_gradrnn[serving]", or export with warmup=False.',
        "error: Building a gRPC PredictRequest needs tensorflow-serving-api: "
        'pip install "tf_gradrnn[serving]".',
    ]
