"""Serving a trained `GradientRNN` with TensorFlow Serving: export, verification and requests.

Export writes a version of a TF Serving model folder; its signatures run the recurrence in the
graph, so the server needs TensorFlow only:

    path = export_saved_model(model, "models/my_model")   # models/my_model/1
    check_saved_model(path, model, x)                      # reload, compare with Keras

Modules: `export` (the signatures and `export_saved_model`), `input_checks` (the graph's own
shape checks), `versions` (version numbers, file modes), `warmup` (TF Serving warm-up
records), `verify` (`check_saved_model`); for requests, `signatures`, `grpc` and `rest`.

The request helpers let a user (and our tests) check what a deployed version answers without a
model server: they build requests as a client does and answer them as the server does.

    loaded = tf.saved_model.load(str(path))
    request = predict_request({"x": x})          # gRPC, x: (batch, time, features)
    response = serve_grpc(loaded, request)
    body = rest_request_body({"x": x})           # REST, {"signature_name", "instances"}
    answer = serve_rest(loaded, json.dumps(body))  # {"predictions": [...]}

Everything is read from the signatures the SavedModel has (`structured_input_signature`,
`structured_outputs`), so any exported signature works, not only ours.

Rules followed (TF Serving "RESTful API" guide, https://www.tensorflow.org/tfx/serving/api_rest,
and the server code it describes: `tensorflow_serving/util/json_tensor.cc` for JSON and
`tensorflow_serving/servables/tensorflow/predict_util.cc` for Predict): each module lists those
it implements, `signatures` (signature names and inputs, shared), `grpc` (TensorProtos) and
`rest` (JSON bodies and answers). The gRPC helpers need the `serving` extra
(`tensorflow-serving-api`); everything else needs TensorFlow only.

Not emulated: model routing by name and version (`model_spec.version` stays unset), HTTP status
codes and `{"error": ...}` bodies (an `InvalidRequestError` is raised instead), string/`b64` and
other non-numeric tensors in JSON, signature defaults, Classify/Regress/GetModelMetadata. Two
checks are stricter than the server: columnar `"inputs"` with an unknown key are refused (the
server ignores the key), and ranks and fixed dimensions are checked against the signature before
running it (the server leaves that to the graph: ours checks them and names the input, others
may fail deeper). Errors raised by the signature itself come back as `InvalidRequestError`
with their message.
"""

from tf_gradrnn.serving.export import export_saved_model, find_gradient_rnn
from tf_gradrnn.serving.grpc import predict_request, serve_grpc
from tf_gradrnn.serving.rest import rest_request_body, serve_rest
from tf_gradrnn.serving.signatures import (
    DEFAULT_SIGNATURE,
    METADATA_SIGNATURE,
    InvalidRequestError,
    saved_feature_names,
)
from tf_gradrnn.serving.verify import check_saved_model

__all__ = [
    "DEFAULT_SIGNATURE",
    "METADATA_SIGNATURE",
    "InvalidRequestError",
    "check_saved_model",
    "export_saved_model",
    "find_gradient_rnn",
    "predict_request",
    "rest_request_body",
    "saved_feature_names",
    "serve_grpc",
    "serve_rest",
]
