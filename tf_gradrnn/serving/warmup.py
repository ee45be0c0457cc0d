"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests` in a version folder.

TF Serving replays these `PredictionLog` records when it loads the version, so graph
initialization happens then, not on the first real request. Writing them needs the `serving`
extra (`tensorflow-serving-api`).
"""

import importlib.util
from pathlib import Path

import tensorflow as tf

from tf_gradrnn.gradient_rnn import GradientRNN
from tf_gradrnn.serving.grpc import predict_request, serving_api

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def serving_api_available() -> bool:
    """Whether `tensorflow-serving-api` (the `serving` extra) can be imported."""
    return importlib.util.find_spec("tensorflow_serving") is not None


def prediction_log_pb2():
    """`tensorflow_serving.apis.prediction_log_pb2`, or an ImportError saying what to do."""
    return serving_api(
        "prediction_log_pb2", "Writing TF Serving warm-up requests", "or export with warmup=False"
    )


def write_warmup_requests(path: Path, layer: GradientRNN, batch: int = 2, steps: int = 4):
    """Writes two requests for each of `serving_default`, `sequence` and `step` to `path`.

    Inputs are zeros and ones, of batch `batch` and `steps` time steps.
    """
    logs = prediction_log_pb2()
    dtype = layer.cell.compute_dtype
    features, units = layer.cell.features, layer.units
    requests = []
    for fill in (0.0, 1.0):
        x = tf.fill([batch, steps, features], tf.constant(fill, dtype)).numpy()
        h = tf.fill([batch, units], tf.constant(fill, dtype)).numpy()
        requests += [
            predict_request({"x": x}, "serving_default"),
            predict_request({"x": x, "h0": h}, "sequence"),
            predict_request({"x_t": x[:, 0], "h": h}, "step"),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            log = logs.PredictionLog(predict_log=logs.PredictLog(request=request))
            writer.write(log.SerializeToString())
