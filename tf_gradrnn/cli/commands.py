"""The `tf-gradrnn` command: demo, train, evaluate, predict, export and inspect.

    tf-gradrnn demo                                       the project's demo (tf_gradrnn.cli.demo)
    tf-gradrnn train --data DATA --output RUN [options]   or: train --resume RUN
    tf-gradrnn evaluate RUN/model.keras --data DATA
    tf-gradrnn predict RUN/model.keras --data DATA --output predictions.csv
    tf-gradrnn export RUN/model.keras --output models/NAME
    tf-gradrnn inspect MODEL                              a .keras file or a SavedModel folder

A mistake (a missing file, a wrong column, NaN in the data, a model that does not fit the
data, an unwritable folder) ends with one line on stderr and exit status 2, and writes
nothing; `--debug` shows the traceback instead.
"""

import csv
import os
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import demo, plots, run_folder, strategies, training
from tf_gradrnn.cli.data import DataError
from tf_gradrnn.cli.parser import build_parser
from tf_gradrnn.cli.run_folder import RunError
from tf_gradrnn.cli.strategies import ClusterError
from tf_gradrnn.cli.training import DEFAULTS
from tf_gradrnn.serving import check_saved_model, saved_feature_names

USER_ERRORS = (DataError, RunError, ClusterError, OSError)
COLUMNS = ("id_column", "time_column", "target_column", "feature_columns")


def _load_data(args, target: bool) -> data_lib.SequenceData:
    columns = {name: getattr(args, name) for name in COLUMNS}
    return data_lib.load(args.data, target=target, **columns)


def _describe(data: data_lib.SequenceData) -> str:
    lengths = data.lengths
    return (
        f"{len(data.x)} sequences from {data.source}, {data.features} features "
        f"({', '.join(data.feature_names)}), lengths {lengths.min()}..{lengths.max()}"
    )


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
        config = run_folder.read_config(run_dir)
        columns = {name: config["data"][name] for name in COLUMNS}
        data = data_lib.load(config["data"]["path"], target=True, **columns)
        print(f"resuming {run_dir} after epoch {len(run_folder.read_history(run_dir))}")
    else:
        if args.data is None:
            raise DataError("--data is required (or --resume RUN)")
        options = {name: getattr(args, name, default) for name, default in DEFAULTS.items()}
        data = _load_data(args, target=True)
        data_lib.split(len(data.x), options["validation_split"], options["seed"])
        training.build_layer(options)  # refuses a bad activation before any file is written
        run_dir = args.output or Path("runs") / args.data.stem
        columns = {name: getattr(args, name) for name in COLUMNS}
        existed = run_dir.exists()
        data_options = {"path": str(args.data), **columns}
        if chief:
            config = run_folder.start(run_dir, options, data, data_options)
        else:  # the chief creates the run folder
            config = run_folder.run_config(options, data, data_options)
    print(f"data: {_describe(data)}")
    if strategy:
        replicas = strategy.num_replicas_in_sync
        xla = "XLA off, " if config["jit"] else ""
        plural = "s" if replicas != 1 else ""
        print(f"strategy: {args.strategy}, {replicas} replica{plural} ({xla}see --help)")
    try:
        summary = training.train(
            run_dir, config, data, args.crash_after_epoch, strategy=strategy, chief=chief
        )
    except BaseException as error:
        done = len(run_folder.read_history(run_dir))
        if chief and not done and not args.resume:
            run_folder.discard(run_dir, keep_folder=existed)  # nothing to resume: leave nothing
        if isinstance(error, KeyboardInterrupt) and done:
            hint = f"continue with: tf-gradrnn train --resume {run_dir}"
            print(f"tf-gradrnn train: interrupted after epoch {done}; {hint}", file=sys.stderr)
            return 130
        raise
    val = f", validation loss {summary['val_loss']:.4g}" if "val_loss" in summary else ""
    best = ""
    if summary["best_epoch"]:
        best = f"kept epoch {summary['best_epoch']} (lowest validation loss): "
    if not chief:
        print(
            f"trained {summary['epochs_run']} epochs; {best}loss {summary['loss']:.4g}{val}; "
            f"the chief writes the run folder {run_dir}"
        )
        return 0
    print(
        f"trained {summary['epochs_run']} epochs; {best}loss {summary['loss']:.4g}{val}, "
        f"R^2 {plots.format_r2(summary['r2'])} on the {summary['r2_on']} sequences\n"
        f"run folder {run_dir}:\n"
        f"  model.keras                the trained model\n"
        f"  history.csv, loss.png      loss per epoch\n"
        f"  predictions.png            predictions against the truth\n"
        f"  checkpoints/               the model and optimizer after each epoch\n"
        f"  logs/                      TensorBoard: tensorboard --logdir {run_dir / 'logs'}\n"
        f"next: tf-gradrnn export {run_dir / 'model.keras'} --output models/{run_dir.name}"
    )
    return 0


def _model_and_data(args, target: bool):
    model = training.load_model(args.model)
    training.find_layer(model, str(args.model))
    data = _load_data(args, target)
    training.check_features(model, data, str(args.model))
    outputs = training.sequence_model(model, str(args.model)).predict(
        data_lib.evaluation_dataset(data, np.arange(len(data.x)), args.batch_size), verbose=0
    )
    return data, outputs[0][..., 0], outputs[1]


def evaluate(args) -> int:
    data, y_pred, _ = _model_and_data(args, target=True)
    mask, y = data.mask, data.y
    error = (y_pred - y)[mask]
    mse = float(np.mean(error**2))
    variance = float(np.var(y[mask]))
    r2 = f"{1.0 - mse / variance:.6f}" if variance > 0 else plots.format_r2(float("nan"))
    print(f"{args.model} on {_describe(data)}: {int(mask.sum())} real steps")
    print(f"mse {mse:.6g}  rmse {np.sqrt(mse):.6g}  mae {np.mean(np.abs(error)):.6g}  r2 {r2}")
    return 0


def predict(args) -> int:
    if args.output.suffix not in (".npz", ".csv"):
        raise RunError(f"--output {args.output}: use a .npz or .csv file name")
    data, y_pred, h = _model_and_data(args, target=False)
    y_pred = np.where(data.mask, y_pred, 0.0).astype(np.float32)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix == ".npz":
        arrays = {"y_pred": y_pred, "h": h, "mask": data.mask, "ids": np.array(data.ids)}
        run_folder.atomic_write(args.output, lambda tmp: np.savez(tmp, **arrays))
    else:
        run_folder.atomic_write(args.output, lambda tmp: _write_csv(tmp, args, data, y_pred, h))
    print(
        f"wrote {args.output}: predictions y_pred for {int(data.mask.sum())} steps of "
        f"{len(data.x)} sequences and their final states h ({h.shape[1]} units)"
    )
    return 0


def _write_csv(path, args, data, y_pred, h) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        units = [f"h_{k + 1}" for k in range(h.shape[1])]
        writer.writerow([args.id_column, args.time_column, "y_pred", *units])
        for i, sequence in enumerate(data.ids):
            state = [repr(float(v)) for v in h[i]]
            for t, time in zip(np.flatnonzero(data.mask[i]), data.steps[i], strict=True):
                writer.writerow([sequence, time, repr(float(y_pred[i, t])), *state])


def export(args) -> int:
    model = training.load_model(args.model)
    layer = training.find_layer(model, str(args.model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            version_dir = tf_gradrnn.export_saved_model(
                model, args.output, version=args.version, jit_compile=args.jit, warmup=args.warmup
            )
        except (ValueError, TypeError, ImportError) as error:
            raise RunError(f"cannot export {args.model}: {error}") from None
    for warning in caught:
        print(f"note: {warning.message}")
    x = np.random.default_rng(0).standard_normal((2, 5, layer.cell.features))
    difference = check_saved_model(version_dir, model, x.astype(layer.compute_dtype))
    print(
        f"exported {args.model} to {version_dir} and reloaded it: max |SavedModel - Keras| = "
        f"{difference:.2g}\nserve it: docker run -p 8501:8501 --mount type=bind,source="
        f"{args.output.resolve()},target=/models/{args.output.name} "
        f"-e MODEL_NAME={args.output.name} -t tensorflow/serving"
    )
    return 0


def inspect(args) -> int:
    path = args.model
    if path.is_dir():
        return _inspect_saved_model(path)
    if path.suffix != ".keras":
        raise RunError(f"{path}: not a .keras file or a SavedModel folder")
    model = training.load_model(path)
    model.summary()
    for tensor in model.inputs:
        print(f"input {tensor.name}: {tuple(tensor.shape)} {tensor.dtype}")
    for tensor in model.outputs:  # Keras names outputs after internal tensors: no name here
        print(f"output: {tuple(tensor.shape)} {tensor.dtype}")
    for layer in model.layers:
        if isinstance(layer, tf_gradrnn.GradientRNN):
            potential = layer.potential
            detail = (
                f"hidden units {list(layer.hidden_units)}, activation "
                f"{keras.activations.serialize(layer.activation)}"
                if isinstance(potential, tf_gradrnn.MLPPotential)
                else f"custom potential {type(potential).__name__} '{potential.name}'"
            )
            print(
                f"GradientRNN '{layer.name}': {layer.cell.features} features, {layer.units} "
                f"state units, {detail}"
            )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"parameters: {model.count_params():,} ({trainable:,} trainable)")
    return 0


def _inspect_saved_model(path: Path) -> int:
    if not (path / "saved_model.pb").is_file():
        versions = sorted(
            (p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()),
            key=lambda p: int(p.name),
        )
        if not versions:
            raise RunError(f"{path} holds no SavedModel (no saved_model.pb, no version folder)")
        print(f"{path}: versions {', '.join(p.name for p in versions)}; the latest is shown")
        path = versions[-1]
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise RunError(f"cannot load the SavedModel {path}: {str(error).splitlines()[0]}") from None
    print(f"SavedModel {path}")
    for name, function in loaded.signatures.items():
        print(f"signature {name}:")
        for kind, specs in (
            ("input ", function.structured_input_signature[1]),
            ("output", function.structured_outputs),
        ):
            for key, spec in sorted(specs.items()):
                print(f"  {kind} {key}: {spec.dtype.name} {_shape(spec.shape)}")
    names = saved_feature_names(loaded)
    print(f"features: {', '.join(names) if names else 'not stored with the export'}")
    variables = getattr(loaded, "variables", [])
    print(f"parameters: {sum(int(np.prod(v.shape)) for v in variables):,}")
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    print(f"warm-up requests: {'yes' if warmup.is_file() else 'no'}")
    return 0


def _shape(shape) -> str:
    return "any shape (checked when called)" if shape.rank is None else str(tuple(shape.as_list()))


def _quiet_tensorflow() -> None:
    tf.get_logger().setLevel("ERROR")
    warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy")
    # TensorFlow logs some things once per process on the C-level stderr, whatever
    # TF_CPP_MIN_LOG_LEVEL says once imported: the CUDA probe of the first device query,
    # oneDNN's note on boolean transposes (the mask), XLA's start. Trigger them quietly.
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            tf.config.list_logical_devices()
            tf.transpose(tf.zeros([1, 1], tf.bool))
            tf.function(lambda x: x + 1, jit_compile=True)(tf.zeros([1]))
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return " ".join(str(error).split()) or type(error).__name__


VERBS = {
    "demo": lambda args: demo.run_from_args(args) and 0,
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "export": export,
    "inspect": inspect,
}


def main(argv=None) -> int:
    """Runs `tf-gradrnn` with `argv` (default: the command line); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return exit.code
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


if __name__ == "__main__":
    sys.exit(main())
