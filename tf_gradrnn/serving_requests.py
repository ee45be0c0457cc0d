"""TensorFlow Serving predict requests, built as a client does and answered as the server does.

Lets a user (and our tests) check what a deployed SavedModel answers without a model server:

    request = predict_request({"x": x})          # gRPC, x: (batch, time, features)
    response = serve_grpc(loaded, request)       # loaded = tf.saved_model.load(path)
    body = rest_request_body({"x": x})           # REST, {"signature_name", "instances"}
    answer = serve_rest(loaded, json.dumps(body))  # {"predictions": [...]}

Everything is read from the signatures the SavedModel has (`structured_input_signature`,
`structured_outputs`), so any exported signature works, not only ours.

Rules followed (TF Serving "RESTful API" guide, https://www.tensorflow.org/tfx/serving/api_rest,
and the server code it describes: `tensorflow_serving/util/json_tensor.cc` for JSON and
`tensorflow_serving/servables/tensorflow/predict_util.cc` for Predict):
- The signature is `model_spec.signature_name` / `"signature_name"`, `serving_default` if unset.
- A request must name exactly the signature's inputs (`VerifyRequestInputsSize`); a TensorProto
  must have the input's dtype (the server's session refuses any other).
- REST bodies hold exactly one of `"instances"` (row format: a non-empty list, one entry per
  example, batched on a new axis 0; entries are objects `{input name: value}`, or bare values when
  the signature has a single input) or `"inputs"` (columnar format: an object
  `{input name: nested list}`, or a bare nested list for a single input).
- JSON numbers become the input's dtype: a float tensor takes any number (integers up to
  2**24 - 1 for float32, 2**53 - 1 for float64; finite values within range: no loss of precision)
  but not a string or a boolean; an integer tensor takes only integers; `NaN`, `Infinity` are
  accepted. Nested lists must be dense: every list at one depth has the length of the first.
- Row answers are `{"predictions": [...]}`, one entry per example (an object
  `{output name: value}` when the signature has several outputs); every output needs the same
  axis-0 size. Columnar answers are `{"outputs": {name: value}}`, or the bare value for a single
  output. Floats are written as the server's `WriteDecimal` does (six significant digits when they
  round-trip, else 9 for float32 / 17 for float64), so the numbers are the ones a client decodes.
- gRPC answers echo `model_spec` and return each output (or only those in `output_filter`) as a
  TensorProto with repeated `float_val`/`double_val`/... fields (`Tensor::AsProtoField`).

Not emulated: model routing by name and version (`model_spec.version` stays unset), HTTP status
codes and `{"error": ...}` bodies (an `InvalidRequestError` is raised instead), string/`b64` and
other non-numeric tensors in JSON, signature defaults, Classify/Regress/GetModelMetadata. Two
checks are stricter than the server: columnar `"inputs"` with an unknown key are refused (the
server ignores the key), and ranks and fixed dimensions are checked against the signature before
running it (the server leaves that to the TensorFlow runtime, whose errors are less clear). Inputs
declared with an unknown shape are not checked here: errors raised by the signature itself (for
example its own shape assertions) come back as `InvalidRequestError` with their message.
"""

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2

__all__ = [
    "DEFAULT_SIGNATURE",
    "InvalidRequestError",
    "predict_request",
    "rest_request_body",
    "serve_grpc",
    "serve_rest",
]

DEFAULT_SIGNATURE = "serving_default"

# TensorProto fields that `Tensor::AsProtoField` fills for each dtype.
_PROTO_FIELDS = {
    tf.float32: "float_val",
    tf.float64: "double_val",
    tf.int8: "int_val",
    tf.int16: "int_val",
    tf.int32: "int_val",
    tf.uint8: "int_val",
    tf.int64: "int64_val",
    tf.bool: "bool_val",
}


class InvalidRequestError(ValueError):
    """A predict request that TF Serving would refuse; the message names the offending part."""


def predict_request(
    inputs: Mapping[str, Any],
    signature_name: str = DEFAULT_SIGNATURE,
    model_name: str = "tf_gradrnn",
    output_filter: Iterable[str] = (),
) -> predict_pb2.PredictRequest:
    """Builds a gRPC `PredictRequest` as a client does, with `tf.make_tensor_proto`.

    Args:
        inputs: input name -> array-like, e.g. `{"x": x}` with x: (batch, time, features). The
            dtype is the array's: send float32 arrays to a float32 signature (a float64 NumPy
            array makes a DT_DOUBLE tensor, which the server refuses).
        signature_name: the signature to call.
        model_name: `model_spec.name`, the model the server routes the request to.
        output_filter: names of the outputs to return; empty returns them all.

    Returns:
        A `tensorflow_serving.apis.predict_pb2.PredictRequest`.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        if isinstance(value, tf.Tensor):
            value = value.numpy()
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def rest_request_body(
    inputs: Mapping[str, Any], signature_name: str = DEFAULT_SIGNATURE, columnar: bool = False
) -> dict:
    """Builds the JSON body of a REST `:predict` call (plain lists and numbers).

    The row format always lists objects, `{"instances": [{"x": x[0]}, {"x": x[1]}, ...]}`: TF
    Serving accepts that for any number of inputs (with a single input it also accepts the bare
    list `{"instances": x}`, which `serve_rest` decodes too). The columnar format is
    `{"inputs": {"x": x}}`.

    Args:
        inputs: input name -> array-like. The row format needs every input to have the same
            axis-0 (batch) size; the columnar format takes any shapes.
        signature_name: the signature to call.
        columnar: columnar (`"inputs"`) instead of row (`"instances"`) format.

    Returns:
        A dict ready for `json.dumps`.

    Raises:
        InvalidRequestError: for the row format, an input is a scalar or the batch sizes differ.
    """
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if columnar:
        columns = {name: array.tolist() for name, array in arrays.items()}
        return {"signature_name": signature_name, "inputs": columns}
    first = None
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InvalidRequestError(
                f"input {name!r} is a scalar, but the row format splits every input along axis 0; "
                "use columnar=True"
            )
        if first is None:
            first = name
        elif array.shape[0] != arrays[first].shape[0]:
            raise InvalidRequestError(
                f"input {name!r} has batch size {array.shape[0]} but input {first!r} has "
                f"{arrays[first].shape[0]}: the row format needs one batch size; use columnar=True"
            )
    batch = 0 if first is None else arrays[first].shape[0]
    instances = [{name: array[i].tolist() for name, array in arrays.items()} for i in range(batch)]
    return {"signature_name": signature_name, "instances": instances}


def serve_grpc(
    saved_model: Any, request: predict_pb2.PredictRequest
) -> predict_pb2.PredictResponse:
    """Answers a gRPC `PredictRequest` as TF Serving's `Predict` does.

    Args:
        saved_model: what `tf.saved_model.load(path)` returns.
        request: e.g. from `predict_request`.

    Returns:
        A `PredictResponse` whose `outputs` map output names to TensorProtos (read them with
        `tf.make_ndarray`).

    Raises:
        InvalidRequestError: unknown signature or output, missing or unexpected input, wrong
            dtype, rank or fixed dimension, or inputs the signature fails on.
    """
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    function = _signature(saved_model, name)
    specs = function.structured_input_signature[1]
    _check_names(name, specs, request.inputs.keys(), "the request")
    output_names = sorted(function.structured_outputs)
    if request.output_filter:
        output_names = list(request.output_filter)
        for output in output_names:
            if output not in function.structured_outputs:
                raise InvalidRequestError(
                    f"output_filter names output {output!r}, which signature {name!r} does not "
                    f"have (its outputs: {_names(function.structured_outputs)})"
                )
        if len(set(output_names)) != len(output_names):
            raise InvalidRequestError(f"output_filter repeats an output: {output_names}")
    arrays = {}
    for key, proto in sorted(request.inputs.items()):
        expected = specs[key].dtype
        try:
            received = tf.dtypes.as_dtype(proto.dtype)
        except TypeError:
            received = None
        if received != expected:
            raise InvalidRequestError(
                f"input {key!r} of signature {name!r}: expected a {expected.name} tensor, received "
                f"{'one with no dtype' if received is None else 'a ' + received.name + ' tensor'}"
            )
        try:
            # Tensor::FromProto, as the server parses: unlike tf.make_ndarray it pads a short
            # repeated *_val field with its last value.
            parsed = tf.io.parse_tensor(proto.SerializeToString(), out_type=expected)
        except tf.errors.InvalidArgumentError as error:
            raise InvalidRequestError(
                f"input {key!r}: tensor parsing error: its values do not fill its shape "
                f"{tf.TensorShape(proto.tensor_shape)}"
            ) from error
        arrays[key] = parsed.numpy()
    outputs = _run(function, name, specs, arrays)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = name
    for output in output_names:
        response.outputs[output].CopyFrom(_as_proto_field(outputs[output]))
    return response


def serve_rest(saved_model: Any, body: dict | str) -> dict:
    """Answers the body of a REST `:predict` call as TF Serving does.

    Args:
        saved_model: what `tf.saved_model.load(path)` returns.
        body: the JSON text, or the dict it encodes (which must be JSON-serializable: plain lists
            and numbers, as from `rest_request_body`).

    Returns:
        The JSON answer as a dict: `{"predictions": [...]}` for the row format,
        `{"outputs": ...}` for the columnar format (see the module docstring).

    Raises:
        InvalidRequestError: malformed body, unknown signature, missing or unexpected input, value
            of the wrong type, ragged list, instances of different shapes, wrong rank or fixed
            dimension, or inputs the signature fails on.
    """
    body = _parse_body(body)
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidRequestError(f"'signature_name' must be a string, received {name!r}")
    name = name or DEFAULT_SIGNATURE
    function = _signature(saved_model, name)
    specs = function.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise InvalidRequestError(
            "the body needs exactly one of 'instances' (row format) or 'inputs' (columnar "
            f"format); received keys {sorted(body)}"
        )
    if "instances" in body:
        outputs = _run(function, name, specs, _decode_rows(name, specs, body["instances"]))
        return {"predictions": _rows_answer(outputs)}
    outputs = _run(function, name, specs, _decode_columns(name, specs, body["inputs"]))
    values = {key: _json_values(key, array) for key, array in outputs.items()}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}


def _signature(saved_model, name):
    signatures = getattr(saved_model, "signatures", None)
    if signatures is None:
        raise TypeError(
            "saved_model must be what tf.saved_model.load(path) returns (an object with "
            f".signatures), received {type(saved_model).__name__}"
        )
    if name not in signatures:
        raise InvalidRequestError(
            f"Serving signature key {name!r} not found; this SavedModel has signatures "
            f"{_names(signatures.keys())}"
        )
    return signatures[name]


def _names(names) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def _check_names(signature, specs, received, where):
    received = set(received)
    for kind, names in (("missing", set(specs) - received), ("unexpected", received - set(specs))):
        if names:
            raise InvalidRequestError(
                f"{kind} input {_names(names)} in {where} for signature {signature!r}: expected "
                f"inputs {_names(specs)}, received {_names(received)}"
            )


def _run(function, signature, specs, arrays):
    for key, array in arrays.items():
        expected = specs[key].shape
        if expected.rank is None:
            continue
        dims = tuple(expected.as_list())
        if array.ndim != expected.rank:
            raise InvalidRequestError(
                f"input {key!r} of signature {signature!r}: expected rank {expected.rank}, shape "
                f"{dims}, received rank {array.ndim}, shape {array.shape}"
            )
        for axis, (want, got) in enumerate(zip(dims, array.shape, strict=True)):
            if want is not None and want != got:
                raise InvalidRequestError(
                    f"input {key!r} of signature {signature!r}: expected shape {dims} (dimension "
                    f"{axis} of size {want}), received shape {array.shape}"
                )
    tensors = {key: tf.constant(array, dtype=specs[key].dtype) for key, array in arrays.items()}
    try:
        outputs = function(**tensors)
    except tf.errors.InvalidArgumentError as error:
        # E.g. x and h0 with different batch sizes (a signature cannot say they must agree), or
        # the run-time checks of a signature whose inputs have an unknown shape.
        lines = [line.strip() for line in error.message.splitlines()]
        noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
        reason = next((line for line in lines if line and not line.startswith(noise)), "")
        shapes = ", ".join(f"{key} {array.shape}" for key, array in sorted(arrays.items()))
        raise InvalidRequestError(
            f"signature {signature!r} refused inputs {shapes}: {reason}"
        ) from error
    return {key: value.numpy() for key, value in outputs.items()}


def _as_proto_field(array):
    dtype = tf.as_dtype(array.dtype)
    field = _PROTO_FIELDS.get(dtype)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(
        dtype=dtype.as_datatype_enum, tensor_shape=tf.TensorShape(array.shape).as_proto()
    )
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def _parse_body(body):
    try:
        # A dict goes through JSON too, so it holds only what a client could send.
        text = body if isinstance(body, str | bytes) else json.dumps(body)
        parsed = json.loads(text)
    except (TypeError, ValueError) as error:
        raise InvalidRequestError(
            f"the body is not JSON ({error}); send plain lists and numbers, e.g. "
            "rest_request_body(...) or array.tolist()"
        ) from error
    if not isinstance(parsed, dict):
        raise InvalidRequestError(f"the body must be a JSON object, received {type(parsed)}")
    return parsed


def _decode_rows(signature, specs, instances):
    if not isinstance(instances, list) or not instances:
        raise InvalidRequestError(f"'instances' must be a non-empty list, received {instances!r}")
    named = isinstance(instances[0], dict)
    if not named and len(specs) > 1:
        raise InvalidRequestError(
            f"'instances' is a plain list, but signature {signature!r} has several inputs "
            f"({_names(specs)}): send a list of objects {{input name: value}}"
        )
    columns = {key: [] for key in specs}
    for i, row in enumerate(instances):
        if isinstance(row, dict) != named:
            kinds = [("a value/list", "an object")[flag] for flag in (isinstance(row, dict), named)]
            raise InvalidRequestError(
                f"item {i} of 'instances' is {kinds[0]} but item 0 is {kinds[1]}: use objects "
                "{input name: value} for every item or for none"
            )
        items = row if named else {next(iter(specs)): row}
        _check_names(signature, specs, items.keys(), f"item {i} of 'instances'")
        for key, value in items.items():
            array = _json_to_array(value, specs[key].dtype, f"input {key!r} in item {i}")
            if columns[key] and array.shape != columns[key][0].shape:
                raise InvalidRequestError(
                    f"input {key!r} in item {i} of 'instances' has shape {array.shape} but "
                    f"{columns[key][0].shape} in item 0: the row format stacks items, so they "
                    "must have one shape (use the columnar format for other batch layouts)"
                )
            columns[key].append(array)
    return {key: np.stack(arrays) for key, arrays in columns.items()}


def _decode_columns(signature, specs, inputs):
    if not isinstance(inputs, dict):
        if len(specs) > 1:
            raise InvalidRequestError(
                f"'inputs' is a plain value/list, but signature {signature!r} has several inputs "
                f"({_names(specs)}): send an object {{input name: value}}"
            )
        inputs = {next(iter(specs)): inputs}
    _check_names(signature, specs, inputs.keys(), "'inputs'")
    return {
        key: _json_to_array(value, specs[key].dtype, f"input {key!r} in 'inputs'")
        for key, value in inputs.items()
    }


def _json_to_array(value, dtype, where):
    # The shape comes from the first element at every depth (GetDenseTensorShape); every other
    # list must match it (FillTensorProto).
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    flat = []
    _flatten(value, shape, 0, flat, where)
    values = [_json_scalar(item, dtype, where) for item in flat]
    return np.array(values, dtype=dtype.as_numpy_dtype).reshape(shape)


def _flatten(value, shape, depth, flat, where):
    if not isinstance(value, list):
        if depth != len(shape):
            raise InvalidRequestError(
                f"{where} is a ragged list: value {value!r} at nesting depth {depth}, expected "
                f"lists down to depth {len(shape)} (the shape of the first element, {shape})"
            )
        flat.append(value)
        return
    if depth >= len(shape):
        raise InvalidRequestError(
            f"{where} is a ragged list: a list at nesting depth {depth}, expected a value there "
            f"(the shape of the first element, {shape})"
        )
    if len(value) != shape[depth]:
        raise InvalidRequestError(
            f"{where} is a ragged list: a list of length {len(value)} at nesting depth {depth}, "
            f"expected length {shape[depth]} (the shape of the first element, {shape})"
        )
    for item in value:
        _flatten(item, shape, depth + 1, flat, where)


def _json_scalar(value, dtype, where):
    kind = "boolean" if isinstance(value, bool) else type(value).__name__
    if dtype in (tf.float32, tf.float64):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequestError(
                f"{where}: expected JSON numbers for a {dtype.name} tensor, received {value!r} "
                f"({kind})"
            )
        info = np.finfo(dtype.as_numpy_dtype)
        if isinstance(value, int):
            lossless = abs(value) <= 2 ** (info.nmant + 1) - 1
        else:
            lossless = not math.isfinite(value) or float(info.min) <= value <= float(info.max)
        if not lossless:
            raise InvalidRequestError(
                f"{where}: cannot convert {value!r} to {dtype.name} without loss of precision"
            )
    elif dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(
                f"{where}: expected JSON integers for a {dtype.name} tensor, received {value!r} "
                f"({kind})"
            )
        if not info.min <= value <= info.max:
            raise InvalidRequestError(f"{where}: {value} is out of the range of {dtype.name}")
    elif dtype == tf.bool:
        if not isinstance(value, bool):
            raise InvalidRequestError(f"{where}: expected true/false, received {value!r}")
    else:
        raise InvalidRequestError(f"{where}: {dtype.name} tensors are not decoded from JSON here")
    return value


def _rows_answer(outputs):
    first = None
    for key, array in sorted(outputs.items()):
        if array.ndim == 0 or (first and array.shape[0] != outputs[first].shape[0]):
            raise InvalidRequestError(
                f"output {key!r} has shape {array.shape}, which the row format cannot split into "
                f"the batch of {first!r} {outputs[first].shape if first else ''}; send the "
                "request in the columnar format ('inputs')"
            )
        first = first or key
    values = {key: _json_values(key, array) for key, array in outputs.items()}
    if len(values) == 1:
        return next(iter(values.values()))
    return [{key: rows[i] for key, rows in values.items()} for i in range(len(values[first]))]


def _json_values(name, array):
    if array.dtype in (np.float32, np.float64):
        # WriteDecimal: six significant digits if they read back to the same value, else enough
        # digits to round-trip (max_digits10). NaN and Infinity are kept, as the server writes.
        width, digits = (np.float32, 9) if array.dtype == np.float32 else (np.float64, 17)

        def convert(value):
            text = f"{value:.6g}"
            if math.isfinite(value) and width(text) != width(value):
                text = f"{value:.{digits}g}"
            return float(text)

    elif array.dtype == np.bool_:
        convert = bool
    elif np.issubdtype(array.dtype, np.integer):
        convert = int
    else:
        raise TypeError(
            f"output {name!r} has dtype {array.dtype}, which is not encoded to JSON here"
        )
    flat = [convert(value) for value in array.ravel().tolist()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()
