"""REST `:predict` bodies, built as a client does and answered as TF Serving's JSON API does.

Rules followed (TF Serving "RESTful API" guide, https://www.tensorflow.org/tfx/serving/api_rest,
and `tensorflow_serving/util/json_tensor.cc`), besides those of `tf_gradrnn.serving.signatures`:
- A signature without inputs cannot be called over REST ("Failed to get input map for
  signature"); gRPC calls it.
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
"""

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tf_gradrnn.serving import signatures
from tf_gradrnn.serving.signatures import DEFAULT_SIGNATURE, InvalidRequestError


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
    function = signatures.find(saved_model, name)
    specs = function.structured_input_signature[1]
    if not specs:
        raise InvalidRequestError(
            f"Failed to get input map for signature: {name}: TF Serving's REST API cannot call "
            "a signature without inputs; call it over gRPC"
        )
    if ("instances" in body) == ("inputs" in body):
        raise InvalidRequestError(
            "the body needs exactly one of 'instances' (row format) or 'inputs' (columnar "
            f"format); received keys {sorted(body)}"
        )
    if "instances" in body:
        outputs = signatures.run(
            function, name, specs, _decode_rows(name, specs, body["instances"])
        )
        return {"predictions": _rows_answer(outputs)}
    outputs = signatures.run(function, name, specs, _decode_columns(name, specs, body["inputs"]))
    values = {key: _json_values(key, array) for key, array in outputs.items()}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}


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
            f"({signatures.quoted_names(specs)}): send a list of objects {{input name: value}}"
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
        signatures.check_inputs(signature, specs, items.keys(), f"item {i} of 'instances'")
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
                f"({signatures.quoted_names(specs)}): send an object {{input name: value}}"
            )
        inputs = {next(iter(specs)): inputs}
    signatures.check_inputs(signature, specs, inputs.keys(), "'inputs'")
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
