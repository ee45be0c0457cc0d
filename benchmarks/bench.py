"""Times tf_gradrnn.GradientRNN against a naive nested-tape RNN, for training and inference.

Run from the repository root (a full run takes tens of minutes on 2 CPU cores; --quick, seconds):

    python benchmarks/bench.py                       # small, medium, large on CPU -> its
                                                     # section of RESULTS.md (report.py)
    python benchmarks/bench.py --sizes small --reps 5 --output /tmp/RESULTS.md
    python benchmarks/bench.py --device gpu          # on '/GPU:0'
    python benchmarks/bench.py --quick               # tiny size, 3 reps, prints only

Every (implementation, size, mode) case runs in a fresh subprocess, so that its peak memory is
its own and no compiled function or allocator cache carries over from a previous case. The
parent process only starts the cases, collects their JSON results and writes the report.

Implementations, all built from the same initial weights:
  naive     the textbook cell below (Dense layers, a tf.GradientTape inside `call`) wrapped in
            keras.layers.RNN, compiled with jit_compile=False: Keras' tf.function graph, no XLA.
  package   tf_gradrnn.GradientRNN compiled with jit_compile=False.
  package+XLA  tf_gradrnn.GradientRNN compiled with jit_compile=True.
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
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402
from spec import LEARNING_RATE, SIZES, Size, initial_weights  # noqa: E402

RESULT_PREFIX = "BENCH_RESULT "
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"


IMPLEMENTATIONS = {
    # key: (label, jit_compile)
    "naive": ("naive (tf.function, no XLA)", False),
    "package": ("tf_gradrnn jit_compile=False", False),
    "package_xla": ("tf_gradrnn jit_compile=True", True),
}
MODES = ("train", "infer")

FLOP_FORMULA = """\
Matmul FLOPs only, 2*m*k*n per (m, k) @ (k, n) product. One evaluation of F on a batch:

    f = 2*B*(D+H)*U + 2*B*U^2 + 2*B*U        (layer 1, layer 2, output layer)

    infer FLOPs per call = T * 2f   forward of F, plus the input-gradient backward that gives
                                    dF/dh, which has the same matmuls transposed (it computes
                                    dF/d[x, h] for all D+H columns and keeps the last H)
    train FLOPs per call = T * 6f   the above, plus the backward of both, counted as 2x their
                                    forward (a weight-gradient and an input-gradient matmul per
                                    forward matmul; this backward is second order)

Approximation: tanh and its derivatives, bias adds, concat, the loss and the SGD update are not
counted, and the real second-order backward holds some extra elementwise work. GFLOP/s is this
count divided by the median time; "% matmul" divides it by the rate of one large float32 matmul
(2*N^3 FLOPs) measured on the same device in the same run."""


def flops_per_call(size: Size, mode: str) -> float:
    b, d, h, u = size.batch, size.features, size.units, size.hidden
    f = 2 * b * (d + h) * u + 2 * b * u * u + 2 * b * u
    return size.steps * (2 if mode == "infer" else 6) * f


class NaiveGradientCell(keras.layers.Layer):
    """The textbook cell: y = F(x, h), h_next = dF/dh, with F a tanh MLP of Dense layers.

    x: (batch, features), h: (batch, units) -> y: (batch, 1), h_next: (batch, units)
    """

    def __init__(self, units: int, hidden_units=(64, 64), **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = 1
        self.hidden_layers = [
            keras.layers.Dense(u, activation="tanh", name=f"hidden_{i}")
            for i, u in enumerate(hidden_units)
        ]
        self.output_layer = keras.layers.Dense(1, name="output")

    def build(self, input_shape):
        shape = (input_shape[0], input_shape[-1] + self.units)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = (shape[0], layer.units)
        self.output_layer.build(shape)

    def call(self, inputs, states):
        h = states[0] if isinstance(states, (list, tuple)) else states
        with tf.GradientTape() as tape:
            tape.watch(h)
            z = tf.concat([inputs, h], axis=-1)
            for layer in self.hidden_layers:
                z = layer(z)
            f = self.output_layer(z)
        return f, [tape.gradient(f, h)]


def build_model(implementation: str, size: Size) -> keras.Model:
    """x: (batch, time, D) -> y: (batch, time, 1), compiled with SGD and MSE."""
    hidden_units = (size.hidden, size.hidden)
    if implementation == "naive":
        layer = keras.layers.RNN(NaiveGradientCell(size.units, hidden_units), return_sequences=True)
    else:
        layer = tf_gradrnn.GradientRNN(size.units, hidden_units=hidden_units, return_sequences=True)
    model = keras.Sequential([keras.Input((None, size.features)), layer])
    model.set_weights(initial_weights(size))
    jit_compile = IMPLEMENTATIONS[implementation][1]
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse", jit_compile=jit_compile
    )
    return model


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def spread(times_ms: list[float]) -> dict:
    q25, median, q75 = np.percentile(times_ms, [25, 50, 75])
    return {"median_ms": float(median), "q25_ms": float(q25), "q75_ms": float(q75)}


def device_setup(device: str) -> str:
    """Hides or prepares GPUs before any op runs; returns the TF device name."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return "/CPU:0"
    if not gpus:
        raise SystemExit("--device gpu: TensorFlow sees no GPU on this machine.")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "/GPU:0"


def run_case(spec: dict, rss_after_imports: int) -> dict:
    """One (implementation, size, mode) case, in this fresh process."""
    size = Size(**spec["size"])
    mode, implementation = spec["mode"], spec["implementation"]
    tf_device = device_setup(spec["device"])
    gpu_memory_base = None
    with tf.device(tf_device):
        if tf_device.startswith("/GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")
            gpu_memory_base = tf.config.experimental.get_memory_info("GPU:0")["current"]
        rng = np.random.default_rng(1)
        x = tf.constant(rng.standard_normal((size.batch, size.steps, size.features)), tf.float32)
        y = tf.constant(rng.standard_normal((size.batch, size.steps, 1)), tf.float32)
        model = build_model(implementation, size)
        weights_before = model.get_weights()
        last_weight = model.trainable_weights[-1]

        if mode == "train":

            def step():
                loss = model.train_on_batch(x, y)
                # The loss is a Python float, but the SGD update may still be in flight on an
                # accelerator: reading a variable waits for it.
                keras.ops.convert_to_numpy(last_weight)
                return loss
        else:

            def step():
                return model.predict_on_batch(x)  # a NumPy array: the call has completed

        start = time.perf_counter()
        first = step()
        first_call_s = time.perf_counter() - start
        if mode == "train":
            # -lr * (the loss gradient): compares the second-order backward across implementations
            check = np.concatenate(
                [
                    (w - w0).ravel()
                    for w, w0 in zip(model.get_weights(), weights_before, strict=True)
                ]
            )
        else:
            check = np.asarray(first).ravel()
        for _ in range(spec["warmup"]):
            step()
        times_ms = []
        for _ in range(spec["reps"]):
            start = time.perf_counter()
            last = step()
            times_ms.append(1e3 * (time.perf_counter() - start))

    if gpu_memory_base is None:
        peak_bytes = peak_rss_bytes() - rss_after_imports
        memory_method = "peak RSS - RSS after imports"
    else:
        peak_bytes = tf.config.experimental.get_memory_info("GPU:0")["peak"] - gpu_memory_base
        memory_method = "TF GPU allocator peak - current before the case"
    return {
        **spec,
        **spread(times_ms),
        "times_ms": times_ms,
        "first_call_s": first_call_s,
        "peak_mb": peak_bytes / 2**20,
        "memory_method": memory_method,
        "jit_compile_effective": bool(model.jit_compile),
        "finite": bool(np.all(np.isfinite(last))),
        "check": check.tolist(),
        "device_name": tf_device,
    }


def run_matmul(spec: dict) -> dict:
    """Median time of one n x n float32 matmul: the machine's achievable GFLOP/s."""
    n = spec["n"]
    tf_device = device_setup(spec["device"])
    with tf.device(tf_device):
        rng = np.random.default_rng(0)
        a = tf.constant(rng.standard_normal((n, n)), tf.float32)
        b = tf.constant(rng.standard_normal((n, n)), tf.float32)
        for _ in range(max(spec["warmup"], 1)):
            tf.linalg.matmul(a, b)[0, 0].numpy()
        times_ms = []
        for _ in range(spec["reps"]):
            start = time.perf_counter()
            # Eager op; fetching one element waits for the whole product without copying it.
            tf.linalg.matmul(a, b)[0, 0].numpy()
            times_ms.append(1e3 * (time.perf_counter() - start))
    result = {**spec, **spread(times_ms), "times_ms": times_ms}
    result["gflops"] = 2 * n**3 / (result["median_ms"] * 1e-3) / 1e9
    result["versions"] = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_gradrnn": tf_gradrnn.__version__,
        "numpy": np.__version__,
    }
    if spec["device"] == "gpu":
        details = tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]
        )
        result["gpu_name"] = details.get("device_name", "unknown GPU")
    return result


def child_main(kind: str, spec_json: str) -> int:
    rss_after_imports = current_rss_bytes()
    spec = json.loads(spec_json)
    result = run_case(spec, rss_after_imports) if kind == "case" else run_matmul(spec)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_child(kind: str, spec: dict) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if spec["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    command = [sys.executable, str(Path(__file__).resolve()), f"--child-{kind}", json.dumps(spec)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(
        f"benchmark subprocess {kind} {spec} failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def relative_difference(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def results_table(results: list[dict], matmul_gflops: float) -> list[str]:
    lines = [
        "| size | mode | implementation | median ms | IQR ms | naive / this | GFLOP/s "
        "| % matmul | first call s | peak MB | rel. diff vs naive |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["size_name"], r["mode"], r["implementation"]): r for r in results}
    for r in results:
        naive = by_key.get((r["size_name"], r["mode"], "naive"))
        ratio = f"{naive['median_ms'] / r['median_ms']:.2f}" if naive else "-"
        diff = "-"
        if naive and r is not naive:
            diff = f"{relative_difference(r['check'], naive['check']):.1e}"
        gflops = r["flops"] / (r["median_ms"] * 1e-3) / 1e9
        label = IMPLEMENTATIONS[r["implementation"]][0]
        if r.get("best"):
            label += " (best)"
        lines.append(
            f"| {r['size_name']} | {r['mode']} | {label} | {r['median_ms']:.2f} "
            f"| {r['q75_ms'] - r['q25_ms']:.2f} | {ratio} | {gflops:.3g} "
            f"| {100 * gflops / matmul_gflops:.2g} | {r['first_call_s']:.2f} "
            f"| {r['peak_mb']:.0f} | {diff} |"
        )
    return lines


def build_report(args, command: str, machine: dict, matmul: dict, results: list[dict]) -> str:
    memory_methods = sorted({r["memory_method"] for r in results})
    notes = []
    if args.reps < 20:
        notes.append(f"Only {args.reps} repetitions per case (the benchmark's default is 20).")
    for r in results:
        name = f"{r['size_name']}/{r['mode']}/{r['implementation']}"
        if IMPLEMENTATIONS[r["implementation"]][1] and not r["jit_compile_effective"]:
            notes.append(f"{name}: Keras turned jit_compile=True off; this row ran without XLA.")
        if not r["finite"]:
            notes.append(f"{name}: non-finite outputs or loss in the last repetition.")
    lines = [
        "## tf_gradrnn against a naive Keras cell (`bench.py`)",
        "",
        "### Machine",
        "",
        f"- date: {machine['date']}",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable)",
        f"- load average (1 min) at start / end: {machine['load_start']} / {machine['load_end']}",
        f"- device: {args.device}" + (f" ({matmul['gpu_name']})" if "gpu_name" in matmul else ""),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in matmul["versions"].items()),
        f"- platform: {platform.platform()}",
        "",
        "### Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Sizes: {', '.join(f'{name} {asdict(SIZES[name])}' for name in args.sizes)}. "
        f"F has two tanh hidden layers of U units; float32. Each case: one first call (timed as "
        f"'first call': tracing, XLA compilation and one run), {args.warmup} warm-up calls, then "
        f"{args.reps} timed calls with time.perf_counter, each complete (outputs converted to "
        "NumPy, or a variable read after the SGD update) before the clock stops. "
        "train = model.train_on_batch (forward, second-order backward, SGD update); "
        "infer = model.predict_on_batch.",
        "",
        "### FLOP count",
        "",
        "```",
        FLOP_FORMULA,
        "```",
        "",
        "### Matmul reference",
        "",
        f"{matmul['n']}x{matmul['n']} @ {matmul['n']}x{matmul['n']} float32, median of "
        f"{matmul['reps']}: {matmul['median_ms']:.2f} ms (IQR "
        f"{matmul['q75_ms'] - matmul['q25_ms']:.2f} ms) = {matmul['gflops']:.1f} GFLOP/s",
        "",
        "### Results",
        "",
        *results_table(results, matmul["gflops"]),
        "",
        "Columns: median ms and IQR ms (75th - 25th percentile) of the timed calls; naive / this, "
        "the naive time divided by this row's (> 1: faster than naive); GFLOP/s from the FLOP "
        "count above; % matmul, that rate as a share of the matmul reference; first call s, the "
        "first call's time; peak MB, memory per case measured as "
        + " / ".join(memory_methods)
        + " (each case runs in a fresh process; on CPU this includes the model, data, "
        "tracing and compilation); rel. diff vs naive, max |this - naive| / max |naive| over the "
        "first call's outputs (infer) or first SGD weight update (train): the implementations "
        "compute the same thing. (best) marks the faster package configuration per case.",
        "",
        "### Notes",
        "",
        *([f"- {n}" for n in notes] or ["- none"]),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument(
        "--sizes",
        type=lambda s: [name.strip() for name in s.split(",") if name.strip()],
        default=None,
        help=f"comma-separated, from {', '.join(SIZES)} (default: small,medium,large)",
    )
    parser.add_argument("--reps", type=int, default=None, help="timed calls per case (20)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed calls after the first (3)"
    )
    parser.add_argument(
        "--matmul-size", type=int, default=None, help="N of the reference N x N matmul (2048)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"markdown report (default: {DEFAULT_OUTPUT}; none with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny size, 3 reps: a smoke test, seconds"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or (["tiny"] if quick else ["small", "medium", "large"])
    args.reps = args.reps if args.reps is not None else (3 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.matmul_size = args.matmul_size or (256 if quick else 2048)
    if args.output is None and not quick:
        args.output = DEFAULT_OUTPUT
    unknown = [name for name in args.sizes if name not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    if args.reps < 1 or args.warmup < 0:
        parser.error("--reps must be at least 1 and --warmup at least 0")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.device == "gpu" and not tf.config.list_physical_devices("GPU"):
        print(
            "--device gpu: TensorFlow sees no GPU on this machine (tf.config."
            "list_physical_devices('GPU') is empty). Use --device cpu.",
            file=sys.stderr,
        )
        return 2
    command = shlex.join(["python", sys.argv[0], *argv])
    machine = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_start": f"{os.getloadavg()[0]:.2f}",
    }
    common = {"device": args.device, "warmup": args.warmup, "reps": args.reps}
    print(f"matmul reference {args.matmul_size}^2 ...", flush=True)
    matmul = run_child("matmul", {**common, "n": args.matmul_size})
    print(f"  {matmul['median_ms']:.2f} ms, {matmul['gflops']:.1f} GFLOP/s", flush=True)

    results = []
    for size_name in args.sizes:
        size = SIZES[size_name]
        for mode in MODES:
            case = []
            for implementation in IMPLEMENTATIONS:
                print(f"{size_name} {mode} {implementation} ...", flush=True)
                spec = {
                    **common,
                    "size_name": size_name,
                    "size": asdict(size),
                    "mode": mode,
                    "implementation": implementation,
                    "flops": flops_per_call(size, mode),
                }
                r = run_child("case", spec)
                print(
                    f"  {r['median_ms']:.2f} ms (first call {r['first_call_s']:.2f} s)", flush=True
                )
                case.append(r)
            best = min(
                (r for r in case if r["implementation"] != "naive"), key=lambda r: r["median_ms"]
            )
            best["best"] = True
            results.extend(case)
    machine["load_end"] = f"{os.getloadavg()[0]:.2f}"

    report = build_report(args, command, machine, matmul, results)
    print()
    print(report)
    if args.output is not None:
        write_section(args.output, "bench.py", report)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--child-case", "--child-matmul"):
        sys.exit(child_main(sys.argv[1].removeprefix("--child-"), sys.argv[2]))
    sys.exit(main())
