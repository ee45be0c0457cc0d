"""TensorFlow's thread pools on this machine: tf_gradrnn's step time per (intra_op, inter_op).

Run from the repository root (about ten minutes on 2 CPU cores):

    python benchmarks/threads.py --size small
    python benchmarks/threads.py --size medium --settings 0,0 1,1 2,1 --rounds 3

TensorFlow fixes its thread pools when it starts, so each setting runs in a process of its own
(`tf.config.threading.set_intra_op_parallelism_threads` / `..._inter_op_...` before any op;
0 is TensorFlow's default, one thread per core). The settings take turns, one process each per
round, so that a slow spell of the machine falls on all of them alike. A process times
`--calls` calls each of `train_on_batch` and `predict_on_batch` (jit_compile=True), interleaved,
after warm-up. The table gives the median over all rounds of each setting's median.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULT_PREFIX = "THREADS_RESULT "


def child(size_name: str, intra: int, inter: int, calls: int) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    import ours
    import timing
    from spec import SIZES, batch_data, initial_weights

    size = SIZES[size_name]
    x, y = (tf.constant(a) for a in batch_data(size))
    model = ours.build_model(size, initial_weights(size), jit_compile=True)
    times = timing.interleave(
        {
            "train": lambda: model.train_on_batch(x, y),
            "infer": lambda: model.predict_on_batch(x),
        },
        rounds=calls,
        per_round=1,
        warmup=3,
    )
    return {mode: timing.median(t) for mode, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--settings", nargs="+", default=["0,0", "1,1", "2,1", "1,2"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = {setting: [] for setting in args.settings}
    for _ in range(args.rounds):
        for setting in args.settings:
            command = [sys.executable, str(Path(__file__).resolve()), "--child", args.size]
            command += [*setting.split(","), str(args.calls)]
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [s for s in proc.stdout.splitlines() if s.startswith(RESULT_PREFIX)]
            if not lines:
                raise RuntimeError(f"setting {setting} failed:\n{proc.stderr[-3000:]}")
            results[setting].append(json.loads(lines[0][len(RESULT_PREFIX) :]))
            print(setting, results[setting][-1], flush=True)
    print(f"\nsize {args.size}; ms, median over {args.rounds} processes of each one's median")
    print("| intra_op, inter_op | train_on_batch | predict_on_batch |\n|---|---:|---:|")
    for setting, runs in results.items():
        cells = [sorted(r[mode] for r in runs)[len(runs) // 2] for mode in ("train", "infer")]
        print(f"| {setting} | {cells[0]:.3f} | {cells[1]:.3f} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        size_name, intra, inter, calls = sys.argv[2], *map(int, sys.argv[3:])
        print(RESULT_PREFIX + json.dumps(child(size_name, intra, inter, calls)), flush=True)
        sys.exit(0)
    sys.exit(main())
