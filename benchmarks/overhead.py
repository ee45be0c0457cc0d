"""Fixed cost, cost per time step, and the small-matmul ceiling of one training call.

Run from the repository root (about a minute on 2 CPU cores):

    python benchmarks/overhead.py                    # the small size of bench.py
    python benchmarks/overhead.py --size medium --steps 1 20 100

Times `model.train_on_batch` (median of `--reps` calls after warm-up) at several sequence
lengths T, with the models of `bench.py`, and fits `time = fixed + per_step * T`. The fixed
part is what a call costs whatever T (Keras' `train_on_batch` in Python, the function call,
the SGD update, the loss back to Python); it bounds the ratio naive / package that any
implementation of the time loop can reach:

    naive(T) / package(T)  <=  naive(T) / fixed

It also times, with `--gemm`, chains of the matmul shapes one step of F at this size runs
(batch x (D+H) x U and batch x U x U), with and without XLA: the rate these small matmuls
reach on this machine bounds what any implementation's time loop can reach, since the
recurrence forbids batching the steps' forward and state-gradient matmuls together.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the same models, sizes and weights as the benchmark)
import tensorflow as tf  # noqa: E402


def median_ms(implementation: str, size: bench.Size, reps: int) -> float:
    model = bench.build_model(implementation, size)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((size.batch, size.steps, size.features)), tf.float32)
    y = tf.constant(rng.standard_normal((size.batch, size.steps, 1)), tf.float32)
    for _ in range(5):  # the first traces (and compiles, with XLA)
        model.train_on_batch(x, y)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(1e3 * (time.perf_counter() - start))
    return float(np.median(times))


def gemm_gflops(m: int, k: int, n: int, jit: bool, chain: int = 200) -> float:
    """GFLOP/s of `chain` dependent (m, k) @ (k, n) matmuls in one compiled function."""
    a = tf.random.normal((m, k))
    b = tf.random.normal((k, n))

    @tf.function(jit_compile=jit)
    def run(a, b):
        x = tf.zeros((m, n))
        for _ in range(chain):  # each matmul waits for the previous one, as time steps do
            x = tf.matmul(a + 0.0 * x[:, :1], b)
        return x

    run(a, b)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        run(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * m * k * n * chain / float(np.median(times)) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(bench.SIZES), default="small")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--gemm", action="store_true", help="also time the step's matmul shapes")
    args = parser.parse_args(argv)
    base = bench.SIZES[args.size]
    if args.gemm:
        b, d, h, u = base.batch, base.features, base.units, base.hidden
        print("| matmul (chained) | GFLOP/s, no XLA | GFLOP/s, XLA |\n|---|---:|---:|")
        for m, k, n in ((b, d + h, u), (b, u, u), (2048, 2048, 2048)):
            chain = 200 if m < 2048 else 1
            rates = [gemm_gflops(m, k, n, jit, chain) for jit in (False, True)]
            print(f"| {m} x {k} x {n} | {rates[0]:.0f} | {rates[1]:.0f} |")
    print(f"size {args.size}: {base}; median of {args.reps} train_on_batch calls, ms")
    print(
        "| implementation | " + " | ".join(f"T={t}" for t in args.steps) + " | fixed | per step |"
    )
    print("|---|" + "---:|" * (len(args.steps) + 2))
    for implementation in ("naive", "package", "package_xla"):
        times = [
            median_ms(implementation, bench.Size(**{**vars(base), "steps": t}), args.reps)
            for t in args.steps
        ]
        per_step, fixed = np.polyfit(args.steps, times, 1)
        cells = [f"{t:.2f}" for t in times] + [f"{fixed:.2f}", f"{per_step:.3f}"]
        print(f"| {bench.IMPLEMENTATIONS[implementation][0]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
