"""tf_gradrnn against hand-written JAX and PyTorch versions of the same model, in one process.

Run from the repository root with the bench extra installed (`pip install -e ".[bench]"`;
about 10 minutes on 2 CPU cores; --quick, a minute):

    python benchmarks/compare.py                   # small, medium, large -> RESULTS.md
    python benchmarks/compare.py --sizes small --rounds 5 --output /tmp/RESULTS.md
    python benchmarks/compare.py --quick           # tiny size, prints only

First, on float64 weights, every peer is checked equal to tf_gradrnn (outputs and loss
gradients, `equality.py`, to 1e-10); a mismatch stops the run before any timing. Then, per
size and mode (train: one SGD step of the MSE, second order; infer: the outputs as NumPy),
float32, every variant is warmed up (compiled) and timed in `--rounds` rounds; each round runs
`--calls` calls of every variant, the variants in a rotated order, so that whatever else the
machine does falls on all of them alike. A call's time is per batch: a `fit` or `predict`
call over `--batches` batches counts as that many. The table gives medians over all calls.

Variants (all from the weights and data of `spec.py`):
  tf_gradrnn XLA / no XLA      model.train_on_batch / predict_on_batch, jit_compile=True/False
  tf_gradrnn XLA, own tf.function step
                               the model in one tf.function(jit_compile=True) of our own: for
                               train a custom step (tape, MSE, model.optimizer.apply), as a
                               custom TensorFlow training loop would write it
  tf_gradrnn XLA, fit          model.fit / predict over a dataset of `--batches` batches,
                               jit_compile=True, steps_per_execution=`--batches`
  JAX autodiff / by hand       jax.jit of lax.scan, dF/dh by jax.vjp / written out
  PyTorch autodiff / by hand   eager, autograd.grad(create_graph=True) / written out; each
                               also with 1 intra-op thread (`torch.set_num_threads(1)`)
"""

import argparse
import functools
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# PyTorch's OpenMP threads otherwise spin after each parallel region, taking the cores from
# whichever variant runs next in this process (measured: up to 100x slower calls on a loaded
# 2-core machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import equality  # noqa: E402
import numpy as np  # noqa: E402
import ours  # noqa: E402
import report  # noqa: E402
import tensorflow as tf  # noqa: E402
import timing  # noqa: E402
from spec import SIZES, batch_data, initial_weights  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"
MODES = ("train", "infer")


class Fit:
    """tf_gradrnn through model.fit / model.predict: `batches` batches per call, all of them
    in one execution of the compiled function (steps_per_execution)."""

    def __init__(self, size, weights, batches: int):
        self.model = ours.build_model(size, weights, True, steps_per_execution=batches)
        self.batches = batches

    def as_input(self, array):
        return tf.constant(array)

    def infer(self, x):
        dataset = tf.data.Dataset.from_tensors(x).repeat(self.batches)
        return self.model.predict(dataset, verbose=0)[: x.shape[0]]

    def train_step(self, x, y):
        dataset = tf.data.Dataset.from_tensors((x, y)).repeat(self.batches)
        return self.model.fit(dataset, epochs=1, verbose=0, shuffle=False).history["loss"][-1]


def variants(size, weights, batches: int) -> dict:
    """{label: (model, batches per call, framework)}."""
    result = {
        "tf_gradrnn XLA": (ours.Model(size, weights, jit_compile=True), 1, "tf_gradrnn"),
        "tf_gradrnn no XLA": (ours.Model(size, weights, jit_compile=False), 1, "tf_gradrnn"),
        "tf_gradrnn XLA, own tf.function step": (
            ours.Model(size, weights, jit_compile=True, own_function=True),
            1,
            "tf_gradrnn",
        ),
        f"tf_gradrnn XLA, fit/predict, steps_per_execution={batches}": (
            Fit(size, weights, batches),
            batches,
            "tf_gradrnn",
        ),
    }
    for name, (model_class, state_gradient) in equality.peer_models().items():
        framework = "JAX" if name.startswith("jax") else "PyTorch"
        label = f"{framework} {state_gradient.replace('_', ' ')}"
        result[label] = (model_class(weights, state_gradient), 1, framework)
        if framework == "PyTorch":
            one_thread = model_class(weights, state_gradient, threads=1)
            result[f"{label}, 1 thread"] = (one_thread, 1, framework)
    return result


def time_mode(models: dict, mode: str, x, y, rounds: int, calls: int, warmup: int) -> dict:
    """{label: per-batch times in ms}, the variants interleaved as the module docstring says;
    also checks that every variant's first result agrees with the first variant's."""
    inputs = {label: (m.as_input(x), m.as_input(y)) for label, (m, _, _) in models.items()}

    def call(label):
        model = models[label][0]
        mx, my = inputs[label]
        return model.train_step(mx, my) if mode == "train" else model.infer(mx)

    first = {label: np.asarray(call(label), np.float64) for label in models}
    reference = next(iter(first.values()))
    for label, value in first.items():
        if mode == "train" and models[label][1] > 1:
            continue  # a fit call's loss is a mean over batches with SGD steps in between
        difference = equality.relative_difference(value, reference)
        if not difference < 1e-4:
            raise AssertionError(f"{mode}: {label} differs from the others by {difference:.1e}")
    return timing.interleave(
        {label: functools.partial(call, label) for label in models},
        rounds,
        calls,
        warmup,
        batches={label: m[1] for label, m in models.items()},
    )


KERAS_PER_BATCH = ("tf_gradrnn XLA", "tf_gradrnn no XLA")  # train_on_batch / predict_on_batch


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def fastest(medians: dict, labels) -> str | None:
    labels = list(labels)
    return min(labels, key=medians.get) if labels else None


def table(size_name: str, mode: str, times: dict, models: dict) -> list[str]:
    medians = {label: float(np.median(t)) for label, t in times.items()}
    best = {
        framework: fastest(medians, (label for label in medians if models[label][2] == framework))
        for framework in {m[2] for m in models.values()}
    }
    ours_best = medians.get(best.get("tf_gradrnn"))
    peer = fastest(medians, (label for label in medians if models[label][2] != "tf_gradrnn"))
    peers_best = medians.get(peer)
    lines = []
    for label, median in medians.items():
        mark = " (best)" if best[models[label][2]] == label else ""
        spread = timing.iqr(times[label])
        lines.append(
            f"| {size_name} | {mode} | {label}{mark} | {median:.2f} | {spread:.2f} "
            f"| {ratio(median, peers_best)} | {ratio(median, ours_best)} |"
        )
    return lines


def summary(rows: list[tuple]) -> list[str]:
    lines = [
        "| size | mode | tf_gradrnn best (ms) | best hand-written (ms) | tf_gradrnn / best "
        "hand-written | Keras per-batch call (ms) | that / best hand-written |",
        "|---|---|---|---|---:|---|---:|",
    ]
    for size_name, mode, times, models in rows:
        medians = {label: float(np.median(t)) for label, t in times.items()}
        ours = fastest(medians, (label for label in medians if models[label][2] == "tf_gradrnn"))
        peer = fastest(medians, (label for label in medians if models[label][2] != "tf_gradrnn"))
        per_batch = fastest(medians, (label for label in medians if label in KERAS_PER_BATCH))
        if ours is None or peer is None:
            continue
        lines.append(
            f"| {size_name} | {mode} | {medians[ours]:.2f} ({ours}) "
            f"| {medians[peer]:.2f} ({peer}) | {ratio(medians[ours], medians[peer])} "
            f"| {medians[per_batch]:.2f} ({per_batch}) "
            f"| {ratio(medians[per_batch], medians[peer])} |"
        )
    return lines


def versions() -> str:
    import jax
    import keras
    import torch

    import tf_gradrnn

    return (
        f"python {platform.python_version()}, tensorflow {tf.__version__}, keras "
        f"{keras.__version__}, tf_gradrnn {tf_gradrnn.__version__}, jax {jax.__version__}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )


def section(args, command, checks, rows, load) -> str:
    lines = [
        "## tf_gradrnn against hand-written JAX and PyTorch (`compare.py`)",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; CPU: {os.cpu_count()} "
        f"cores; load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f}",
        f"- versions: {versions()}",
        f"- command: `{command}`",
        f"- OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (PyTorch's idle threads sleep); "
        f"float32; {args.warmup} warm-up calls per variant after the first, then {args.rounds} "
        f"rounds of {args.calls} calls per variant, interleaved; ms per batch, median and IQR "
        "over all calls.",
        "- equal before timing (float64, max |peer - tf_gradrnn| / max |tf_gradrnn| over y, "
        "the MSE and its six weight gradients): "
        + "; ".join(f"{size}: {worst:.1e}" for size, worst in checks.items()),
        "",
        *summary(rows),
        "",
        "tf_gradrnn best: the fastest tf_gradrnn variant; Keras per-batch call: the faster of "
        "train_on_batch / predict_on_batch with and without XLA (one Keras call per batch).",
        "",
        "| size | mode | variant | median ms | IQR ms | / best hand-written | / best of its "
        "framework |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for size_name, mode, times, models in rows:
        lines += table(size_name, mode, times, models)
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=None, help="comma-separated (small,medium,large)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case (8)")
    parser.add_argument("--calls", type=int, default=None, help="calls per variant a round (2)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batches", type=int, default=5, help="batches per fit/predict call")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--frameworks",
        default="tf_gradrnn,JAX,PyTorch",
        help="comma-separated subset of tf_gradrnn,JAX,PyTorch: time only these (all of them "
        "are still checked equal); one framework alone shows what sharing a process costs it",
    )
    parser.add_argument("--quick", action="store_true", help="tiny size, 2 rounds, prints only")
    args = parser.parse_args(argv)
    args.sizes = (args.sizes or ("tiny" if args.quick else "small,medium,large")).split(",")
    args.rounds = args.rounds or (2 if args.quick else 8)
    args.calls = args.calls or (1 if args.quick else 2)
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/compare.py", *argv])
    load_start = os.getloadavg()[0]
    checks = {}
    for size_name in args.sizes:
        values = equality.check(SIZES[size_name])
        checks[size_name] = max(max(v.values()) for v in values.values())
        print(f"{size_name}: peers equal to tf_gradrnn, worst {checks[size_name]:.1e}", flush=True)
    rows = []
    for size_name in args.sizes:
        size = SIZES[size_name]
        x, y = batch_data(size)
        for mode in MODES:
            frameworks = args.frameworks.split(",")
            models = {
                label: m
                for label, m in variants(size, initial_weights(size), args.batches).items()
                if m[2] in frameworks
            }
            times = time_mode(models, mode, x, y, args.rounds, args.calls, args.warmup)
            rows.append((size_name, mode, times, models))
            for label, t in times.items():
                print(f"{size_name} {mode} {label}: {np.median(t):.2f} ms", flush=True)
    text = section(args, command, checks, rows, (load_start, os.getloadavg()[0]))
    print(text)
    if args.output is not None:
        report.write_section(args.output, "compare.py", text)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
