"""Where a tf_gradrnn call's time goes, next to JAX's for the same model: fixed cost per call,
cost per time step, and what Keras adds around the compiled function.

Run from the repository root with the bench extra installed (a few minutes on 2 CPU cores):

    python benchmarks/anatomy.py --size small            # the table below, printed
    python benchmarks/anatomy.py --size small --hlo /tmp/hlo   # XLA op counts of the loops

Every row is timed in one process, interleaved with the others (`timing.interleave`), at
T = 1 and at the size's T; per step = (time at T - time at 1) / (T - 1), and the fixed cost
is the time at T = 1 less one step. Rows:

  XLA call floor          a trivial tf.function(jit_compile=True) / jax.jit call (x + 1)
  train_on_batch          Keras' per-batch training call, jit_compile=True
  compiled train step     the function train_on_batch calls (`model.train_function` on a
                          one-batch iterator): Keras' Python around it is the difference
  fit, spe=K              model.fit over K batches with steps_per_execution=K, per batch
  JAX train step          jax.jit of loss, gradient and SGD update (jax_peer, by hand)
  predict_on_batch        Keras' per-batch inference call, jit_compile=True
  predict function        what predict_on_batch calls: a tf.function around the XLA one
  one XLA function        tf.function(model(x), jit_compile=True), nothing around it
  JAX infer               jax.jit of the forward pass (jax_peer, by hand)
  chain tanh(h W_2)       the same loop in both: T steps of h <- tanh(h W_2), h: (B, U), in
                          tf.function(jit_compile=True) (tf.while_loop) and jax.jit (fori_loop):
                          the two XLA:CPU builds on identical work

With --hlo DIR (instead of the timings), XLA dumps both frameworks' optimized HLO of the
training step at the size's T into DIR, and the script sorts the top-level instructions of every
while loop's body by what they do: each is one kernel launch per time step on XLA:CPU.
"""

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10, help="K of the fit row")
    parser.add_argument("--hlo", type=Path, default=None, help="dump and count HLO here")
    return parser.parse_args(argv)


ARGS = parse_args(sys.argv[1:]) if __name__ == "__main__" else None
if ARGS is not None and ARGS.hlo is not None:
    # Read by TensorFlow's and JAX's XLA when they start, so set before importing either.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={ARGS.hlo} --xla_dump_hlo_as_text"
    )
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ours  # noqa: E402
import tensorflow as tf  # noqa: E402
import timing  # noqa: E402
from peers import jax_peer  # noqa: E402
from spec import SIZES, Size, batch_data, initial_weights  # noqa: E402


def calls_at(size: Size, batches: int) -> dict:
    """{row: callable} for one T (see the module docstring)."""
    weights = initial_weights(size)
    x_np, y_np = batch_data(size)
    x, y = tf.constant(x_np), tf.constant(y_np)
    keras_model = ours.build_model(size, weights, jit_compile=True)
    keras_model.train_on_batch(x, y)
    keras_model.predict_on_batch(x)
    fit_model = ours.build_model(size, weights, True, steps_per_execution=batches)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat(batches)
    one_xla = tf.function(lambda x: keras_model(x, training=False), jit_compile=True)
    peer = jax_peer.Model(weights, "by_hand")
    jx, jy = peer.as_input(x_np), peer.as_input(y_np)

    steps = size.steps

    @tf.function(jit_compile=True)
    def tf_chain(h, w):
        return tf.while_loop(lambda i, h: i < steps, lambda i, h: (i + 1, tf.tanh(h @ w)), (0, h))

    jax_chain = jax.jit(lambda h, w: jax.lax.fori_loop(0, steps, lambda i, h: jnp.tanh(h @ w), h))
    h_np = np.ones((size.batch, size.hidden), "float32")
    w_np = weights[2] / 2
    h_tf, w_tf = tf.constant(h_np), tf.constant(w_np)
    h_jax, w_jax = jnp.asarray(h_np), jnp.asarray(w_np)

    def compiled_train_step():
        return keras_model.train_function(iter([(x, y, None)]))["loss"].numpy()

    return {
        "train_on_batch": lambda: keras_model.train_on_batch(x, y),
        "compiled train step": compiled_train_step,
        f"fit, spe={batches}": lambda: fit_model.fit(dataset, verbose=0, shuffle=False),
        "JAX train step": lambda: peer.train_step(jx, jy),
        "predict_on_batch": lambda: keras_model.predict_on_batch(x),
        "predict function": lambda: keras_model.predict_function([(x,)]).numpy(),
        "one XLA function": lambda: one_xla(x).numpy(),
        "JAX infer": lambda: peer.infer(jx),
        "chain tanh(h W_2), TensorFlow XLA": lambda: tf_chain(h_tf, w_tf)[1].numpy(),
        "chain tanh(h W_2), JAX": lambda: np.asarray(jax_chain(h_jax, w_jax)),
    }


def floors() -> dict:
    tf_plus_one = tf.function(lambda a: a + 1.0, jit_compile=True)
    jax_plus_one = jax.jit(lambda a: a + 1.0)
    a_tf, a_jax = tf.ones((4,)), jnp.ones((4,))
    return {
        "XLA call floor, TensorFlow": lambda: tf_plus_one(a_tf).numpy(),
        "XLA call floor, JAX": lambda: np.asarray(jax_plus_one(a_jax)),
    }


def anatomy(size: Size, rounds: int, per_round: int, batches: int) -> list[str]:
    one_step = Size(**{**vars(size), "steps": 1})
    at_one, at_t = calls_at(one_step, batches), calls_at(size, batches)
    calls = {**floors()}
    calls.update({(label, 1): call for label, call in at_one.items()})
    calls.update({(label, size.steps): call for label, call in at_t.items()})
    spe = {key: batches for key in calls if isinstance(key, tuple) and key[0].startswith("fit")}
    times = timing.interleave(calls, rounds, per_round, warmup=3, batches=spe)
    med = {key: timing.median(t) for key, t in times.items()}
    lines = [
        f"{size}; ms, medians of {rounds} x {per_round} interleaved calls",
        "",
        f"| call | T = 1 | T = {size.steps} | per step | fixed |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in [k for k in calls if isinstance(k, str)]:
        lines.append(f"| {label} | {med[label]:.3f} | | | |")
    for label in at_one:
        short, full = med[(label, 1)], med[(label, size.steps)]
        per_step = (full - short) / (size.steps - 1)
        lines.append(
            f"| {label} | {short:.3f} | {full:.3f} | {per_step:.4f} | {short - per_step:.3f} |"
        )
    return lines


FREE = {"get-tuple-element", "constant", "tuple", "parameter", "bitcast"}
INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%([\w.\-]+) = .*?\s([a-z][\w\-]*)\((.*)$")


def computations(text: str) -> dict[str, list[tuple[str, str, str]]]:
    """{computation: [(instruction, opcode, rest of the line)]} of optimized HLO text."""
    result, name = {}, None
    for line in text.splitlines():
        header = re.match(r"^(?:ENTRY )?%([\w.\-]+) .*\{$", line)
        if header:
            name = header.group(1)
            result[name] = []
        elif line.startswith("}"):
            name = None
        elif name is not None:
            match = INSTRUCTION.match(line)
            if match:
                result[name].append(match.groups())
    return result


def kernel_kind(instruction, opcode, rest, comps) -> str | None:
    """What one top-level instruction of a loop body does per step (None: no kernel)."""
    if opcode in FREE:
        return None
    called = re.search(r"calls=%([\w.\-]+)", rest)
    inner = {op for _, op, _ in comps.get(called.group(1), [])} if called else set()
    if opcode in ("dot", "convolution") or "dot" in inner or "ynn" in instruction:
        return "matmul"
    if "dynamic-update-slice" in inner or opcode == "dynamic-update-slice":
        return "stack write"
    if "dynamic-slice" in inner or opcode == "dynamic-slice":
        return "stack read"
    if opcode == "copy":
        return "copy"
    return "elementwise" if opcode == "fusion" else opcode


KINDS = ("matmul", "stack write", "stack read", "elementwise", "copy")


def loop_bodies(text: str) -> list[Counter]:
    """Kernel kinds per step of every while loop body in one HLO module, smallest first."""
    comps = computations(text)
    counts = []
    for body in set(re.findall(r"body=%([\w.\-]+)", text)):
        kinds = (kernel_kind(*instr, comps) for instr in comps.get(body, []))
        counts.append(Counter(kind for kind in kinds if kind is not None))
    return sorted(counts, key=lambda c: sum(c.values()))


def stacked_bytes(text: str, steps: int) -> int:
    """Bytes of the per-step stacks (leading dimension `steps`) the loops carry, largest loop."""
    largest = 0
    for shapes in re.findall(r"= \((s\d+\[\], [^)]*)\) while\(", text):
        total = 0
        for dims in re.findall(r"[fs]\d+\[([\d,]+)\]", shapes):
            sizes = [int(v) for v in dims.split(",")]
            if len(sizes) > 1 and sizes[0] == steps:
                total += 4 * int(np.prod(sizes))
        largest = max(largest, total)
    return largest


def hlo_counts(directory: Path, size: Size) -> list[str]:
    """Compiles the training steps at `size` with the dump on, then counts their loop bodies."""
    weights = initial_weights(size)
    x, y = batch_data(size)
    ours.Model(size, weights, jit_compile=True).train_step(tf.constant(x), tf.constant(y))
    for state_gradient in jax_peer.STATE_GRADIENTS:
        peer = jax_peer.Model(weights, state_gradient)
        peer.train_step(peer.as_input(x), peer.as_input(y))
    lines = [
        f"{size}: kernels per time step in each loop of the training step (XLA:CPU, optimized)",
        "",
        "| module | loop | kernels | " + " | ".join(KINDS) + " | stacks per step (kB) | matmul "
        "kernel |",
        "|---|---|---:|" + "---:|" * (len(KINDS) + 1) + "---|",
    ]
    modules = [p for p in sorted(directory.glob("*after_optimizations.txt"))]
    modules = [(p, p.read_text()) for p in modules]
    modules = [(p, text) for p, text in modules if "while(" in text]
    # Compiled in this order (the dump numbers modules in compile order).
    names = ["tf_gradrnn XLA", *(f"JAX {g.replace('_', ' ')}" for g in jax_peer.STATE_GRADIENTS)]
    if len(modules) != len(names):
        raise RuntimeError(f"expected {len(names)} modules with loops in {directory}")
    for name, (_, text) in zip(names, modules, strict=True):
        stacks = stacked_bytes(text, size.steps) / size.steps / 1024
        matmul_kernels = "ynn" if "ynn_fusion" in text else "dot"
        for counts in loop_bodies(text):
            cells = " | ".join(str(counts.get(kind, 0)) for kind in KINDS)
            # The forward loop writes the stacks the backward loop reads.
            loop = "forward" if counts["stack write"] > counts["stack read"] else "backward"
            lines.append(
                f"| {name} | {loop} | {sum(counts.values())} "
                f"| {cells} | {stacks:.0f} | {matmul_kernels} |"
            )
    return lines


def main() -> int:
    size = SIZES[ARGS.size]
    if ARGS.hlo is not None:
        print("\n".join(hlo_counts(ARGS.hlo, size)))
    else:
        print("\n".join(anatomy(size, ARGS.rounds, ARGS.calls, ARGS.batches)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
