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
`tensorflow_serving/servables/tensorflow/predict_util.cc` for Predict): each module lists those
it implements, `serving_signatures` (signature names and inputs, shared), `serving_grpc`
(TensorProtos) and `serving_rest` (JSON bodies and answers).

Not emulated: model routing by name and version (`model_spec.version` stays unset), HTTP status
codes and `{"error": ...}` bodies (an `InvalidRequestError` is raised instead), string/`b64` and
other non-numeric tensors in JSON, signature defaults, Classify/Regress/GetModelMetadata. Two
checks are stricter than the server: columnar `"inputs"` with an unknown key are refused (the
server ignores the key), and ranks and fixed dimensions are checked against the signature before
running it (the server leaves that to the TensorFlow runtime, whose errors are less clear). Inputs
declared with an unknown shape are not checked here: errors raised by the signature itself (for
example its own shape assertions) come back as `InvalidRequestError` with their message.
"""

from tf_gradrnn.serving.grpc import predict_request, serve_grpc
from tf_gradrnn.serving.rest import rest_request_body, serve_rest
from tf_gradrnn.serving.signatures import DEFAULT_SIGNATURE, InvalidRequestError

__all__ = [
    "DEFAULT_SIGNATURE",
    "InvalidRequestError",
    "predict_request",
    "rest_request_body",
    "serve_grpc",
    "serve_rest",
]
