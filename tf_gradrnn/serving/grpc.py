"""gRPC `PredictRequest`s, built as a client does and answered as TF Serving's `Predict` does.

Rules followed (`tensorflow_serving/servables/tensorflow/predict_util.cc`), besides those of
`tf_gradrnn.serving.signatures`:
- A TensorProto must have the input's dtype (the server's session refuses any other).
- gRPC answers echo `model_spec` and return each output (or only those in `output_filter`) as a
  TensorProto with repeated `float_val`/`double_val`/... fields (`Tensor::AsProtoField`).
"""

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from tf_gradrnn.serving import signatures
from tf_gradrnn.serving.signatures import DEFAULT_SIGNATURE, InvalidRequestError

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

if TYPE_CHECKING:
    from tensorflow_serving.apis import predict_pb2


def serving_api(module: str, purpose: str, alternative: str = ""):
    """`tensorflow_serving.apis.<module>`, or an ImportError saying how to install it.

    Imported on use, so that `tf_gradrnn` and the REST helpers work without the `serving` extra.
    """
    try:
        return importlib.import_module(f"tensorflow_serving.apis.{module}")
    except ImportError as error:
        alternative = f", {alternative}" if alternative else ""
        raise ImportError(
            f'{purpose} needs tensorflow-serving-api: pip install "tf_gradrnn[serving]"'
            f"{alternative}."
        ) from error


def predict_request(
    inputs: Mapping[str, Any],
    signature_name: str = DEFAULT_SIGNATURE,
    model_name: str = "tf_gradrnn",
    output_filter: Iterable[str] = (),
) -> "predict_pb2.PredictRequest":
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
    request = serving_api("predict_pb2", "Building a gRPC PredictRequest").PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
        if isinstance(value, tf.Tensor):
            value = value.numpy()
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def serve_grpc(
    saved_model: Any, request: "predict_pb2.PredictRequest"
) -> "predict_pb2.PredictResponse":
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
    function = signatures.find(saved_model, name)
    specs = function.structured_input_signature[1]
    signatures.check_inputs(name, specs, request.inputs.keys(), "the request")
    output_names = sorted(function.structured_outputs)
    if request.output_filter:
        output_names = list(request.output_filter)
        for output in output_names:
            if output not in function.structured_outputs:
                raise InvalidRequestError(
                    f"output_filter names output {output!r}, which signature {name!r} does not "
                    f"have (its outputs: {signatures.quoted_names(function.structured_outputs)})"
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
    outputs = signatures.run(function, name, specs, arrays)
    response = serving_api("predict_pb2", "Answering a gRPC PredictRequest").PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.signature_name = name
    for output in output_names:
        response.outputs[output].CopyFrom(_as_proto_field(outputs[output]))
    return response


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
