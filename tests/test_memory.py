"""Memory guards, each measured as RSS growth in fresh processes (a peak of their own): gradient
checkpointing must keep a fraction of the training memory, and inference over a very long
sequence must not keep anything per step. Marked `memory` (slow); CI runs them.

Run as a script, this file is one measurement:

    python tests/test_memory.py training CHECKPOINT_EVERY|none STEPS OUT.json
    python tests/test_memory.py inference STEPS OUT.json
"""

import json
import os
import resource
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from processes import run_processes
from rss import reset_peak, resident_mb

import tf_gradrnn

pytestmark = [
    pytest.mark.memory,
    pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc"),
]
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def measure(cases: dict[str, list[str]], tmp_path: Path, timeout: float) -> dict[str, dict]:
    """Runs this file once per case, at the same time, and returns each case's JSON result."""
    path = os.pathsep.join(filter(None, [str(BENCHMARKS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = path  # for rss.py
    codes = run_processes(
        [
            [sys.executable, __file__, *args, str(tmp_path / f"{n}.json")]
            for n, args in cases.items()
        ],
        [env] * len(cases),
        [tmp_path / f"{name}.log" for name in cases],
        timeout,
    )
    logs = "\n".join((tmp_path / f"{name}.log").read_text()[-3000:] for name in cases)
    assert codes == [0] * len(cases), logs
    return {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in cases}


# ---- training with and without checkpointing ----

TRAINING_STEPS, TRAINING_BATCH = (400, 1600), 64


def measure_training(every, steps, out: Path):
    """The RSS growth of one second-order training step, after tracing it."""
    layer = tf_gradrnn.GradientRNN(
        16, hidden_units=(64, 64), return_sequences=True, checkpoint_every=every
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((TRAINING_BATCH, steps, 8)), tf.float32)
    y = tf.constant(rng.standard_normal((TRAINING_BATCH, steps, 1)), tf.float32)
    layer(x[:1])

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(layer(x) - y))
        return tape.gradient(loss, layer.trainable_variables)

    step.get_concrete_function(x, y)
    assert reset_peak()  # peak RSS := current RSS
    before = resident_mb()
    step(x, y)
    out.write_text(json.dumps({"growth_mb": resident_mb("VmHWM") - before}))


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
def test_checkpointing_keeps_a_fraction_of_the_training_memory(tmp_path):
    # A guard against checkpointing that silently keeps everything (as when every chunk was
    # recomputed at once): the numbers stay exact, only the memory shows it. What grows
    # with T is compared, from two lengths. Measured here: ~0.10 MB per step without,
    # ~0.005 MB with checkpoint_every=20.
    cases = {f"{k}-{t}": ["training", k, str(t)] for k in ("none", "20") for t in TRAINING_STEPS}
    growth = {name: r["growth_mb"] for name, r in measure(cases, tmp_path, 300).items()}
    short, long = TRAINING_STEPS
    plain, checkpointed = (
        (growth[f"{k}-{long}"] - growth[f"{k}-{short}"]) / (long - short) for k in ("none", "20")
    )
    print(f"\ntraining memory per time step: {plain:.4f} MB, checkpointed {checkpointed:.4f} MB")
    assert checkpointed < 0.3 * plain, growth


# ---- inference over a very long sequence ----

SHORT, LONG = 10**4, 10**5
# Per extra step, inference may keep the step's input, with TensorFlow's overhead per
# TensorArray element: a few hundred bytes. Keeping each step's activations, as a training
# step must, costs tens of kilobytes a step at this size.
MAX_BYTES_PER_STEP = 1024


def measure_inference(steps: int, out: Path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((None, 3)), tf_gradrnn.GradientRNN(8, hidden_units=(32, 32))]
    )
    rng = np.random.default_rng(0)
    model.set_weights([0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    x = rng.standard_normal((1, steps, 3)).astype("float32")
    for warm_up in (10, 11):  # traces the predict function for an unknown time dimension
        model.predict(x[:, :warm_up], verbose=0)
    exact = reset_peak()
    before = resident_mb()
    start = time.perf_counter()
    y = model.predict(x, verbose=0)
    seconds = time.perf_counter() - start
    if exact:
        peak = resident_mb("VmHWM")
    else:  # the process' lifetime peak, an upper bound of the growth
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "growth_mb": peak - before,
        "seconds": seconds,
        "finite": bool(np.isfinite(y).all()),
        "shape": list(y.shape),
    }
    out.write_text(json.dumps(result))


def test_very_long_sequence_inference_runs_in_bounded_memory(tmp_path):
    results = measure({str(s): ["inference", str(s)] for s in (SHORT, LONG)}, tmp_path, 180)
    short, long = results[str(SHORT)], results[str(LONG)]
    assert long["shape"] == [1, 1] and long["finite"] and short["finite"]
    per_step = (long["growth_mb"] - short["growth_mb"]) * 2**20 / (LONG - SHORT)
    print(
        f"\nRSS growth: {short['growth_mb']:.1f} MB at T={SHORT} ({short['seconds']:.1f} s), "
        f"{long['growth_mb']:.1f} MB at T={LONG} ({long['seconds']:.1f} s): "
        f"{per_step:.0f} bytes per extra step"
    )
    assert per_step < MAX_BYTES_PER_STEP, (short, long)


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    if kind == "training":
        every, steps, out = args
        measure_training(None if every == "none" else int(every), int(steps), Path(out))
    else:
        assert kind == "inference", sys.argv
        steps, out = args
        measure_inference(int(steps), Path(out))
