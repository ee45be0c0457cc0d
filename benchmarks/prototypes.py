"""Prototypes of changes to GradientRNN's time loop, timed against the library in one process.

Run from the repository root (a few minutes per size on 2 CPU cores):

    python benchmarks/prototypes.py --size small     # exactness check, then the A/B table

Each variant computes y: (B, T, 1) from x: (B, T, D) for the model of `spec.py`. All run in
the same harness: one `tf.function(jit_compile=True)` (or without XLA, `--no-xla`) that, for
train, opens a tape, runs the variant, takes the MSE, its gradient with respect to the six
weight variables, and applies the SGD step; for infer, runs the variant. Variants:

  library               the GradientRNN layer itself (`model(x)`): keras' RNN loop over the
                        closed form; W_2, b_2 are read from their variables inside the loop
  library, unroll=True  the layer built with GradientRNN(unroll=True): T copies of the step
  library, weights read once
                        the same loop (keras.src.backend.rnn, as the layer calls it) with all
                        six weights read into tensors before it (`closed_form_gradient(D,
                        weights)`): the loop's gradient then need not stack W_2 at every step
  lean loop             a bare tf.while_loop over TensorArrays, weights read once, no mask
                        handling and no extra trace of the step before the loop
  lean loop, unroll k   the same, k steps per loop iteration (T divisible by k)
  whole-sequence custom gradient
                        `sequence_gradient.py`: a hand-written backward pass for the whole
                        sequence, four matmuls per step, the weight gradients after the loop

Before timing, each variant's loss gradient is compared in float64 with the library's by a
tape around the layer: max |variant - library| / max |library| per weight, must be < 1e-12.
"""

import argparse
import functools
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import ours  # noqa: E402
import sequence_gradient  # noqa: E402
import tensorflow as tf  # noqa: E402
import timing  # noqa: E402

# The time loop GradientRNN runs (keras.layers.RNN's), for the "weights read once" variant.
from keras.src.backend import rnn as keras_rnn  # noqa: E402
from spec import LEARNING_RATE, SIZES, batch_data, initial_weights  # noqa: E402

TOLERANCE = 1e-12
ONLY: set[str] = set()  # variants to run (all when empty)


def closed_form(model, read_once: bool):
    potential = model.layers[0].potential
    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables] if read_once else None
    return potential.closed_form_gradient(model.layers[0].cell.features, weights)


def library(model, x):
    return model(x, training=True)


def library_read_once(model, x):
    closed = closed_form(model, read_once=True)

    def step(x_t, states):
        y, gradient = closed.value_and_gradient(closed.project(x_t), states[0])
        return y[:, None], [gradient]

    h_0 = tf.zeros([tf.shape(x)[0], model.layers[0].units], x.dtype)
    _, outputs, _ = keras_rnn(step, x, [h_0], input_length=x.shape[1])
    return outputs


def lean_loop(model, x, unroll: int = 1):
    closed = closed_form(model, read_once=True)
    steps = x.shape[1]
    if steps % unroll:
        raise ValueError(f"unroll={unroll} must divide T={steps}")
    inputs = tf.TensorArray(x.dtype, size=steps).unstack(tf.transpose(x, [1, 0, 2]))
    outputs = tf.TensorArray(x.dtype, size=steps, element_shape=[x.shape[0]])
    h_0 = tf.zeros([tf.shape(x)[0], model.layers[0].units], x.dtype)

    def body(t, h, outputs):
        for k in range(unroll):
            y, h = closed.value_and_gradient(closed.project(inputs.read(t + k)), h)
            outputs = outputs.write(t + k, y)
        return t + unroll, h, outputs

    _, _, outputs = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h_0, outputs),
        maximum_iterations=steps // unroll,
    )
    return tf.transpose(outputs.stack())[:, :, None]


def custom_gradient(model, x):
    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    return sequence_gradient.sequence_outputs(x, *weights)[:, :, None]


def variants(size) -> dict:
    result = {
        "library": library,
        "library, unroll=True": library,  # its model is built with GradientRNN(unroll=True)
        "library, weights read once": library_read_once,
        "lean loop": lean_loop,
    }
    for k in (2, 5):
        if size.steps % k == 0:
            result[f"lean loop, unroll {k}"] = functools.partial(lean_loop, unroll=k)
    result["whole-sequence custom gradient"] = custom_gradient
    return {name: f for name, f in result.items() if not ONLY or name in ONLY}


def variant_model(size, name: str, weights, jit_compile: bool = False):
    layer_args = {"unroll": True} if "unroll=True" in name else None
    return ours.build_model(size, weights, jit_compile, layer_args=layer_args)


def gradients(model, forward, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(forward(model, x) - y))
    return tape.gradient(loss, model.trainable_variables)


def check(size) -> dict[str, float]:
    """{variant: worst relative difference of its float64 loss gradient to the library's}."""
    weights = initial_weights(size, dtype="float64")
    x, y = (tf.constant(a) for a in batch_data(size, dtype="float64"))
    reference = [g.numpy() for g in gradients(variant_model(size, "", weights), library, x, y)]
    worst = {}
    for name, forward in variants(size).items():
        model = variant_model(size, name, weights)
        grads = tf.function(gradients, jit_compile=True)(model, forward, x, y)
        worst[name] = max(
            float(np.max(np.abs(g.numpy() - r)) / np.max(np.abs(r)))
            for g, r in zip(grads, reference, strict=True)
        )
    bad = {name: value for name, value in worst.items() if not value < TOLERANCE}
    if bad:
        raise AssertionError(f"gradients differ from the library's beyond {TOLERANCE}: {bad}")
    return worst


def step_functions(size, jit_compile: bool) -> dict:
    """{(mode, variant): callable}, each variant with its own model."""
    x, y = (tf.constant(a) for a in batch_data(size))
    calls = {}
    for name, forward in variants(size).items():
        model = variant_model(size, name, initial_weights(size), jit_compile)

        @tf.function(jit_compile=jit_compile)
        def train(model=model, forward=forward):
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(forward(model, x) - y))
            for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
                v.assign_sub(LEARNING_RATE * g)
            return loss

        infer = tf.function(functools.partial(forward, model, x), jit_compile=jit_compile)
        calls[("train", name)] = lambda train=train: train().numpy()
        calls[("infer", name)] = lambda infer=infer: infer().numpy()
    return calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--no-xla", action="store_true", help="harness without jit_compile")
    parser.add_argument("--only", nargs="+", default=None, help="variant names (library always)")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    if args.only:
        unknown = set(args.only) - set(variants(size))
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; choose from {list(variants(size))}")
        ONLY.update(["library", *args.only])
    worst = check(size)
    print("float64 gradients vs the library:", ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    calls = step_functions(size, jit_compile=not args.no_xla)
    times = timing.interleave(calls, args.rounds, args.calls, warmup=3)
    xla = "no XLA" if args.no_xla else "XLA"
    print(f"\n{size}, {xla}; ms, medians of {args.rounds} x {args.calls} interleaved calls")
    print("| variant | train | / library | infer | / library |\n|---|---:|---:|---:|---:|")
    med = {key: timing.median(t) for key, t in times.items()}
    for name in variants(size):
        cells = []
        for mode in ("train", "infer"):
            ratio = med[(mode, name)] / med[(mode, "library")]
            cells += [f"{med[(mode, name)]:.3f}", f"{ratio:.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
