"""With a seed and op determinism, two training runs give bit-identical weights, with and
without XLA.

Each run is its own process (`tf.config.experimental.enable_op_determinism()` is global and
cannot be undone, and two processes share no state). A run seeds Keras, builds the model from
Keras' seeded initializers, and trains with Adam on shuffled batches.

Keras refuses XLA when op determinism is on: `compile(jit_compile=True)` then warns "Model
doesn't support `jit_compile=True`" and runs without XLA (`keras.trainers.trainer.
model_supports_jit`). The XLA run therefore compiles its model before turning op determinism
on; Keras reads the setting only in `compile`, and XLA on CPU is deterministic on its own.

Run as a script, this file is one run:

    python tests/test_determinism.py OUT_DIR
"""

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from processes import run_processes  # noqa: E402

import tf_gradrnn  # noqa: E402

SEED = 11
SAMPLES, STEPS, FEATURES, UNITS = 24, 6, 3, 4
TIMEOUT = 120  # seconds for both runs


def compiled_model(jit_compile):
    model = keras.Sequential(
        [
            keras.Input((STEPS, FEATURES)),
            tf_gradrnn.GradientRNN(UNITS, hidden_units=(8,), return_sequences=True),
            keras.layers.Reshape((-1,)),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=jit_compile)
    return model


def train(model):
    keras.utils.set_random_seed(SEED)  # the shuffling
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, STEPS, FEATURES)).astype("float32")
    y = rng.standard_normal((SAMPLES, STEPS)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return model.get_weights()


def run(out: Path):
    keras.utils.set_random_seed(SEED)
    xla_model = compiled_model(jit_compile=True)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(SEED)
    model = compiled_model(jit_compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused = compiled_model(jit_compile=True)  # compiled under op determinism
    report = {
        "refused_jit_compile": refused.jit_compile,
        "refused_warnings": [str(w.message) for w in caught],
    }
    np.savez(out / "plain.npz", *train(model))
    np.savez(out / "xla.npz", *train(xla_model))
    report["xla_jit_compile"] = xla_model.jit_compile
    (out / "report.json").write_text(json.dumps(report))


# ---- the test ----


def test_two_seeded_runs_give_bit_identical_weights(tmp_path):
    outs = [tmp_path / f"run{i}" for i in range(2)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for out in outs:
        out.mkdir()
    codes = run_processes(
        [[sys.executable, __file__, str(out)] for out in outs],
        [env] * len(outs),
        [out / "process.log" for out in outs],
        TIMEOUT,
    )
    for code, out in zip(codes, outs, strict=True):
        assert code == 0, (out / "process.log").read_text()[-3000:]

    reports = [json.loads((out / "report.json").read_text()) for out in outs]
    for report in reports:
        assert report["xla_jit_compile"] is True  # XLA stayed on for the model compiled first
        assert report["refused_jit_compile"] is False
        assert any("doesn't support `jit_compile=True`" in w for w in report["refused_warnings"])

    keras.utils.set_random_seed(SEED)
    initial = compiled_model(jit_compile=False).get_weights()
    for name in ("plain", "xla"):
        first, second = (weights(out / f"{name}.npz") for out in outs)
        assert len(first) == len(second) == len(initial)
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            assert a.tobytes() == b.tobytes(), f"{name} run, weight {i}"
    plain, xla = (weights(outs[0] / f"{name}.npz") for name in ("plain", "xla"))
    for w0, w_plain, w_xla in zip(initial, plain, xla, strict=True):
        assert not np.array_equal(w_plain, w0)  # the runs trained
        # Same start and batches; XLA fuses and reorders, so it may round differently.
        np.testing.assert_allclose(w_xla, w_plain, rtol=1e-4, atol=1e-5)


def weights(path):
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


if __name__ == "__main__":
    run(Path(sys.argv[1]))
