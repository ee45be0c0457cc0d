"""Rebuilds the committed example: the demo's model as SavedModel version 1, with sample
requests and the answers it gives. Run from the repository root (about 30 s on 2 cores):

    python saved_models/regenerate.py
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_gradrnn.cli import demo  # noqa: E402
from tf_gradrnn.serving import rest_request_body, serve_rest  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL = HERE / "gradient_rnn"
REQUESTS = HERE / "requests"


def sample_requests() -> dict:
    """Two small REST bodies: a 4-step sequence (row format) and one step (columnar)."""
    # float64 here only so that the JSON reads 0.13, not 0.12999999523162842; the server
    # casts JSON numbers to the signature's float32.
    x = np.round(np.random.default_rng(0).standard_normal((1, 4, 3)), 2)
    h = np.zeros((1, 4))
    return {
        "sequence": rest_request_body({"x": x}, "serving_default"),
        "step": rest_request_body({"x_t": x[:, 0], "h": h}, "step", columnar=True),
    }


def main() -> None:
    shutil.rmtree(MODEL, ignore_errors=True)
    with tempfile.TemporaryDirectory() as run_dir:
        demo.run(Path(run_dir), export_dir=MODEL)
    loaded = tf.saved_model.load(str(MODEL / "1"))
    REQUESTS.mkdir(exist_ok=True)
    for name, body in sample_requests().items():
        (REQUESTS / f"{name}.json").write_text(json.dumps(body) + "\n")
        answer = serve_rest(loaded, body)
        (REQUESTS / f"{name}.expected.json").write_text(json.dumps(answer) + "\n")
        print(f"{name}: {json.dumps(body)}\n  -> {json.dumps(answer)}")


if __name__ == "__main__":
    main()
