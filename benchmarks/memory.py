"""Peak memory of one GradientRNN training step against the sequence length T.

Run from the repository root (the default takes about three minutes on 2 CPU cores):

    python benchmarks/memory.py                                  # -> benchmarks/MEMORY.md
    python benchmarks/memory.py --steps 50 100 --batch 32 --output /tmp/MEMORY.md
    python benchmarks/memory.py --checkpoint-every 50            # with gradient checkpointing

Training keeps every time step's activations for the second-order backward pass, so its
memory grows linearly with T. Each T runs in a fresh subprocess, so that its peak is its own.
In that process, for the model `Input((T, D)) -> GradientRNN(H, hidden_units=(U, U),
return_sequences=True)` with MSE and SGD (`jit_compile=False` unless `--jit`):

  imports          RSS once TensorFlow, Keras and tf_gradrnn are imported
  peak             the process' peak RSS after building the model and the data and running
                   two training steps (`train_on_batch`; the first one also traces the step)
  peak - imports   what training at this size costs beyond the libraries
  step time        wall time of the second, already traced, step

The second step adds no peak of its own: it reuses the memory the first one freed, which the
allocator keeps. The report ends with a least-squares line through `peak - imports`: the MB
per time step that the backward pass keeps, and the T-independent part (model, traced graph,
allocator slack).
"""

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "MEMORY.md"
RESULT_PREFIX = "MEMORY_RESULT "
TIMEOUT = 900  # seconds for one T


def resident_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_case(spec: dict) -> dict:
    """One T, in this fresh process."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import tf_gradrnn

    imports = resident_mb()
    b, t, d, h, u = (spec[k] for k in ("batch", "steps", "features", "units", "hidden"))
    tf.config.set_visible_devices([], "GPU")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((t, d)),
            tf_gradrnn.GradientRNN(
                h,
                hidden_units=(u, u),
                return_sequences=True,
                checkpoint_every=spec["checkpoint_every"],
            ),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=spec["jit"])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((b, t, d)).astype("float32")
    y = rng.standard_normal((b, t, 1)).astype("float32")
    model.train_on_batch(x, y)  # traces the step
    start = time.perf_counter()
    loss = model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    return {
        **spec,
        "imports_mb": imports,
        "peak_mb": peak_mb(),
        "step_seconds": seconds,
        "loss": float(loss),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run_child(spec: dict) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"case {spec} failed:\n{result.stderr[-3000:]}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fit_line(steps: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of values against steps."""
    n = len(steps)
    mean_t, mean_v = sum(steps) / n, sum(values) / n
    var = sum((t - mean_t) ** 2 for t in steps)
    slope = sum((t - mean_t) * (v - mean_v) for t, v in zip(steps, values, strict=True)) / var
    return slope, mean_v - slope * mean_t


def table(results: list[dict]) -> list[str]:
    lines = [
        "| T | imports (MB) | peak (MB) | peak - imports (MB) | step time (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['steps']} | {r['imports_mb']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['peak_mb'] - r['imports_mb']:.0f} | {r['step_seconds']:.2f} |"
        )
    return lines


def report(args, command: str, results: list[dict]) -> str:
    first = results[0]
    size = (
        f"B={args.batch} D={args.features} H={args.units} U={args.hidden} "
        f"(hidden_units=({args.hidden}, {args.hidden}))"
    )
    variant = f"jit_compile={args.jit}"
    if args.checkpoint_every:
        variant += f", checkpoint_every={args.checkpoint_every}"
    lines = [
        "# GradientRNN training memory against sequence length",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"TensorFlow {first['tensorflow']}, Keras {first['keras']}.",
        f"- Model: `GradientRNN` {size}, `return_sequences=True`, MSE, SGD, {variant}; one "
        "training step (`train_on_batch`) per T, in a fresh process.",
        "- RSS of the process (Linux `ru_maxrss` for the peak); columns as in the docstring "
        "of `benchmarks/memory.py`.",
        "",
        *table(results),
        "",
    ]
    if len(results) >= 2:
        steps = [r["steps"] for r in results]
        slope, intercept = fit_line(steps, [r["peak_mb"] - r["imports_mb"] for r in results])
        per_sample_kb = slope * 1024 / args.batch
        lines += [
            f"A least-squares line through *peak - imports*: **{slope:.2f} MB per time step** "
            f"({per_sample_kb:.1f} kB per sample and step) + {intercept:.0f} MB that does not "
            "depend on T.",
            "",
        ]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_case(json.loads(args.child))), flush=True)
        return 0
    command = "python benchmarks/memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = []
    for steps in args.steps:
        spec = {
            "batch": args.batch,
            "steps": steps,
            "features": args.features,
            "units": args.units,
            "hidden": args.hidden,
            "checkpoint_every": args.checkpoint_every,
            "jit": args.jit,
        }
        results.append(run_child(spec))
        print(table(results)[-1], flush=True)
    text = report(args, command.strip(), results)
    print("\n" + text)
    args.output.write_text(text)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
