"""Rebuilds the committed example: the model `tf-gradrnn demo` trains, with the demo's default
options (150 epochs), exported as SavedModel version 1, with sample requests, the answers it
gives, and those requests and answers in README.md. Run from the repository root (a few minutes
on 2 cores):

    python saved_models/regenerate.py
"""

import argparse
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
README = HERE / "README.md"


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


def train_and_export() -> None:
    """Runs the demo as `tf-gradrnn demo --export-dir saved_models/gradient_rnn` would."""
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    with tempfile.TemporaryDirectory() as run_dir:
        demo.run_from_args(parser.parse_args(["--output", run_dir, "--export-dir", str(MODEL)]))


def write(path: Path, text: str, readme: str) -> str:
    """Writes `text` to `path` and puts it in place of the file's old text in `readme`."""
    old = path.read_text().strip() if path.exists() else None
    path.write_text(text + "\n")
    if old and old in readme:
        return readme.replace(old, text)
    print(f"note: README.md does not show the old {path.name}; add:\n{text}")
    return readme


def main() -> None:
    shutil.rmtree(MODEL, ignore_errors=True)
    train_and_export()
    loaded = tf.saved_model.load(str(MODEL / "1"))
    REQUESTS.mkdir(exist_ok=True)
    readme = README.read_text()
    for name, body in sample_requests().items():
        answer = serve_rest(loaded, body)
        readme = write(REQUESTS / f"{name}.json", json.dumps(body), readme)
        readme = write(REQUESTS / f"{name}.expected.json", json.dumps(answer), readme)
        print(f"{name}: {json.dumps(body)}\n  -> {json.dumps(answer)}")
    README.write_text(readme)


if __name__ == "__main__":
    main()
