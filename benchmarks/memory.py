"""Peak memory and step time of GradientRNN training against the sequence length T, with and
without gradient checkpointing.

Run from the repository root (about three minutes on 2 CPU cores):

    python benchmarks/memory.py --checkpoint-every 10 50           # -> benchmarks/MEMORY.md
    python benchmarks/memory.py --steps 50 100 --batch 32 --output /tmp/MEMORY.md

Training keeps every time step's activations for the second-order backward pass, so its
memory grows linearly with T; `GradientRNN(checkpoint_every=k)` keeps only the states between
chunks of k steps and recomputes each chunk in the backward pass. Each case (T, k) runs in a
fresh subprocess, so that its peak is its own. In that process, for the model
`Input((T, D)) -> GradientRNN(H, hidden_units=(U, U), return_sequences=True)` with MSE and SGD
(`jit_compile=False` unless `--jit`):

  imports          RSS once TensorFlow, Keras and tf_gradrnn are imported
  peak             the process' peak RSS after building the model and the data and running
                   1 + `--repeat` training steps (`train_on_batch`; the first also traces)
  peak - imports   what training at this size costs beyond the libraries
  step time        the median wall time of the `--repeat` steps after the first

Later steps add no peak of their own: they reuse the memory the first one freed, which the
allocator keeps. The report gives, per variant, a least-squares line through
`peak - imports`: the MB per time step that training keeps, and the T-independent part.
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

from rss import resident_mb  # benchmarks/rss.py, beside this script

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "MEMORY.md"
RESULT_PREFIX = "MEMORY_RESULT "
TIMEOUT = 900  # seconds for one T


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
    seconds = []
    for _ in range(spec["repeat"]):
        start = time.perf_counter()
        loss = model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - start)
    return {
        **spec,
        "imports_mb": imports,
        "peak_mb": peak_mb(),
        "step_seconds": sorted(seconds)[len(seconds) // 2],
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


def variant_name(k) -> str:
    return "no checkpointing" if k is None else f"checkpoint_every={k}"


def table(results: list[dict], variants: list) -> list[str]:
    """One row per T: for each variant, peak - imports and the step time; for each
    checkpointed variant, both as a ratio to no checkpointing."""
    header = ["T", "imports (MB)"]
    for k in variants:
        header += [f"{variant_name(k)}: peak - imports (MB)", "step (s)"]
        if k is not None:
            header += ["memory ratio", "time ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    by_case = {(r["steps"], r["checkpoint_every"]): r for r in results}
    for steps in sorted({r["steps"] for r in results}):
        plain = by_case.get((steps, None))
        cells = [str(steps), f"{next(r for r in results if r['steps'] == steps)['imports_mb']:.0f}"]
        for k in variants:
            r = by_case.get((steps, k))
            if r is None:
                cells += ["-"] * (2 if k is None else 4)
                continue
            cost = r["peak_mb"] - r["imports_mb"]
            cells += [f"{cost:.0f}", f"{r['step_seconds']:.3f}"]
            if k is not None:
                if plain:
                    base = plain["peak_mb"] - plain["imports_mb"]
                    cells += [
                        f"{cost / base:.2f}",
                        f"{r['step_seconds'] / plain['step_seconds']:.2f}",
                    ]
                else:
                    cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(args, command: str, results: list[dict], variants: list) -> str:
    first = results[0]
    size = (
        f"B={args.batch} D={args.features} H={args.units} U={args.hidden} "
        f"(hidden_units=({args.hidden}, {args.hidden}))"
    )
    lines = [
        "# GradientRNN training memory against sequence length",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"TensorFlow {first['tensorflow']}, Keras {first['keras']}.",
        f"- Model: `GradientRNN` {size}, `return_sequences=True`, MSE, SGD, "
        f"jit_compile={args.jit}; 1 + {args.repeat} training steps (`train_on_batch`) per "
        "case, each case in a fresh process.",
        "- RSS of the process (Linux `ru_maxrss` for the peak); step time is the median of the "
        "steps after the first; ratios are to no checkpointing at the same T, in this run. "
        "Columns as in the docstring of `benchmarks/memory.py`.",
        "",
        *table(results, variants),
        "",
    ]
    for k in variants:
        rows = [r for r in results if r["checkpoint_every"] == k]
        if len(rows) >= 2:
            steps = [r["steps"] for r in rows]
            slope, intercept = fit_line(steps, [r["peak_mb"] - r["imports_mb"] for r in rows])
            lines.append(
                f"- {variant_name(k)}: a least-squares line through *peak - imports* gives "
                f"**{slope:.2f} MB per time step** ({slope * 1024 / args.batch:.1f} kB per "
                f"sample and step) + {intercept:.0f} MB that does not depend on T."
            )
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        nargs="*",
        default=[],
        metavar="K",
        help="also measure GradientRNN(checkpoint_every=K) for each K",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--jit", action="store_true", help="compile with jit_compile=True")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


HAND_WRITTEN = "\n## What the numbers say"


def _hand_written(path: Path) -> str:
    """The hand-written section of an existing report (from its heading on), kept on rerun."""
    if not path.is_file():
        return ""
    old = path.read_text()
    return "\n" + old[old.index(HAND_WRITTEN) + 1 :] if HAND_WRITTEN in old else ""


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(run_case(json.loads(args.child))), flush=True)
        return 0
    command = "python benchmarks/memory.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = []
    variants = [None, *args.checkpoint_every]
    for steps in args.steps:
        for k in variants:
            spec = {
                "batch": args.batch,
                "steps": steps,
                "features": args.features,
                "units": args.units,
                "hidden": args.hidden,
                "checkpoint_every": k,
                "jit": args.jit,
                "repeat": args.repeat,
            }
            results.append(run_child(spec))
        print(table(results, variants)[-1], flush=True)
    text = report(args, command.strip(), results, variants)
    print("\n" + text)
    args.output.write_text(text + _hand_written(args.output))
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
