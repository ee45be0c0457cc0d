"""Runs the `tf-gradrnn` command, whose arguments `tf_gradrnn.cli.parser` defines:

    tf-gradrnn demo                                       the project's demo (tf_gradrnn.cli.demo)
    tf-gradrnn train --data DATA --output RUN [options]   or: train --resume RUN
    tf-gradrnn evaluate RUN/model.keras --data DATA       these four: tf_gradrnn.cli.model_verbs
    tf-gradrnn predict RUN/model.keras --data DATA --output predictions.csv
    tf-gradrnn export RUN/model.keras --output models/NAME
    tf-gradrnn inspect MODEL                              a .keras file or a SavedModel folder

A mistake (a missing file, a wrong column, NaN in the data, a model that does not fit the
data, an unwritable folder) ends with one line on stderr and exit status 2, and writes
nothing; `--debug` shows the traceback instead.
"""

import contextlib
import os
import sys
import warnings
from pathlib import Path

import tensorflow as tf

from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import demo, model_verbs, run_folder, run_lock, strategies, training
from tf_gradrnn.cli.data import DataError
from tf_gradrnn.cli.model_verbs import count, csv_columns, describe
from tf_gradrnn.cli.options import COLUMNS, DEFAULTS
from tf_gradrnn.cli.parser import build_parser
from tf_gradrnn.cli.run_folder import RunError
from tf_gradrnn.cli.strategies import ClusterError

USER_ERRORS = (DataError, RunError, ClusterError, OSError)


def _strategy(args):
    """The strategy of `train --strategy`: created before TensorFlow runs anything, since a
    multi-worker strategy must configure collective ops at program start."""
    if args.strategy == "default":
        if os.environ.get("TF_CONFIG"):
            print(
                "note: TF_CONFIG is set but ignored: training on this machine alone "
                "(--strategy multi-worker uses it)",
                file=sys.stderr,
            )
        return None
    return strategies.strategy_from_name(args.strategy)


def _new_run_folder(run_dir: Path) -> None:
    """Refuses a `train --output` that exists, saying whether it holds a run to resume."""
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return
    if (run_dir / "model.keras").is_file():
        holds = "a finished run (model.keras); pick another --output"
    elif (run_dir / "config.json").is_file():
        holds = f"an unfinished run; resume it with --resume {run_dir}, or pick another --output"
    else:
        holds = "no run (no config.json); pick another --output"
    raise RunError(f"{run_dir} already exists and holds {holds}")


def train(args) -> int:
    strategy = args.distribution
    chief = strategies.is_chief(strategy) if strategy else True
    typed = [name for name in DEFAULTS if name in vars(args)]
    if args.resume:
        if typed or args.data or args.output:
            given = ", ".join("--" + n.replace("_", "-") for n in typed) or "--data/--output"
            raise RunError(f"--resume takes every option from RUN/config.json; drop {given}")
        run_dir = args.resume
        if not run_dir.is_dir():
            raise RunError(f"{run_dir} holds no run (no such folder)")
        config = run_folder.read_config(run_dir, DEFAULTS)
        columns = {name: config["data"][name] for name in COLUMNS}
        data = data_lib.load(
            config["data"]["path"],
            target=True,
            expected_features=run_folder.features_of(config),
            **columns,
        )
        print(f"resuming {run_dir} after epoch {len(run_folder.read_history(run_dir))}")
    else:
        if args.data is None:
            raise DataError("--data is required (or --resume RUN)")
        options = {name: getattr(args, name, default) for name, default in DEFAULTS.items()}
        columns = csv_columns(args)
        data = data_lib.load(args.data, target=True, **columns)
        data_lib.split(len(data.x), options["validation_split"], options["seed"])
        training.build_layer(options)  # refuses a bad activation before any file is written
        run_dir = args.output or Path("runs") / args.data.stem
        existed = run_dir.exists()
        data_options = {"path": str(args.data), **columns}
        if chief:
            _new_run_folder(run_dir)
            config = run_folder.start(run_dir, options, data, data_options)
        else:  # the chief creates the run folder
            config = run_folder.run_config(options, data, data_options)
    print(f"data: {describe(data)}")
    if strategy:
        replicas = strategy.num_replicas_in_sync
        xla = "XLA off, " if config["jit"] else ""
        print(f"strategy: {args.strategy}, {count(replicas, 'replica')} ({xla}see --help)")
    # Only the chief locks: the workers of a cluster on one host share the run folder. The
    # lock is taken outside the try, so a refused process never discards the other's run.
    with run_lock.locked(run_dir) if chief else contextlib.nullcontext():
        try:
            summary = training.train(run_dir, config, data, strategy=strategy, chief=chief)
        except BaseException as error:
            done = len(run_folder.read_history(run_dir))
            if chief and not done and not args.resume:
                run_folder.discard(run_dir, keep_folder=existed)  # nothing to resume
            if isinstance(error, KeyboardInterrupt) and done:
                hint = f"continue with: tf-gradrnn train --resume {run_dir}"
                print(f"tf-gradrnn train: interrupted after epoch {done}; {hint}", file=sys.stderr)
                return 130
            raise
    _print_summary(summary, run_dir, chief)
    return 0


def _print_summary(summary: dict, run_dir: Path, chief: bool) -> None:
    val = f", validation loss {summary['val_loss']:.4g}" if "val_loss" in summary else ""
    best = ""
    if summary["best_epoch"]:
        best = f"kept epoch {summary['best_epoch']} (lowest validation loss): "
    trained = f"trained {count(summary['epochs_run'], 'epoch')}; {best}loss {summary['loss']:.4g}"
    if not chief:
        print(f"{trained}{val}; the chief writes the run folder {run_dir}")
        return
    files = {"model.keras": "the trained model"}
    if summary["plotted"]:
        files["history.csv, loss.png"] = "loss per epoch"
        files["predictions.png"] = "predictions against the truth"
    else:
        files["history.csv"] = "loss per epoch"
    files["checkpoints/"] = "the model and optimizer after each epoch"
    files["logs/"] = f"TensorBoard: tensorboard --logdir {run_dir / 'logs'}"
    print(
        f"{trained}{val}, R^2 {training.format_r2(summary['r2'])} on the {summary['r2_on']} "
        f"sequences\nrun folder {run_dir}:\n"
        + "".join(f"  {name:<27}{what}\n" for name, what in files.items())
        + f"next: tf-gradrnn export {run_dir / 'model.keras'} --output models/{run_dir.name}"
    )


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ log is quieted by `tf_gradrnn_launcher`, before TensorFlow is imported.
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy")


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return " ".join(str(error).split()) or type(error).__name__


VERBS = {
    "demo": lambda args: demo.run_from_args(args) and 0,
    "train": train,
    "evaluate": model_verbs.evaluate,
    "predict": model_verbs.predict,
    "export": model_verbs.export,
    "inspect": model_verbs.inspect,
}


def run(args) -> int:
    """Runs the verb of `args`, parsed by `parser.build_parser()`; returns the exit status."""
    try:
        if args.verb == "train":
            args.distribution = _strategy(args)
        _quiet_tensorflow()
        return VERBS[args.verb](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"tf-gradrnn {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        message = _one_line(error)
        if not isinstance(error, USER_ERRORS):
            message = f"{type(error).__name__}: {message} (--debug shows the traceback)"
        print(f"tf-gradrnn {args.verb}: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, USER_ERRORS) else 1


def main(argv=None) -> int:
    """Runs `tf-gradrnn` with `argv` (default: the command line) in this process, where
    TensorFlow is already imported; the console command is `tf_gradrnn_launcher.main`."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return exit.code
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
