"""The verbs on a trained model: `tf-gradrnn evaluate`, `predict`, `export` and `inspect`.

`evaluate` and `predict` read the .csv columns the model's run recorded (RUN/config.json next
to RUN/model.keras) unless told otherwise. `count` and `describe` word what every verb prints.
"""

import csv
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn.cli import data as data_lib
from tf_gradrnn.cli import run_folder, training
from tf_gradrnn.cli.options import COLUMNS
from tf_gradrnn.cli.run_folder import RunError
from tf_gradrnn.serving import check_saved_model, saved_feature_names


def count(n: int, noun: str) -> str:
    """`n noun`, with the noun in the plural unless n is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def csv_columns(args, run: dict | None = None) -> dict:
    """The .csv columns: as typed, else as the model's `run` recorded them, else the defaults."""
    recorded = run["data"] if run else {}
    return {
        name: recorded.get(name, default) if getattr(args, name) is None else getattr(args, name)
        for name, default in COLUMNS.items()
    }


def describe(data: data_lib.SequenceData) -> str:
    """`40 sequences from data.csv, 2 features (u, v), lengths 4..10`."""
    lengths = data.lengths
    return (
        f"{count(len(data.x), 'sequence')} from {data.source}, {count(data.features, 'feature')} "
        f"({', '.join(data.feature_names)}), lengths {lengths.min()}..{lengths.max()}"
    )


def _run_of(model_path: Path) -> dict | None:
    """The config of the run that wrote `model_path` (RUN/config.json next to RUN/model.keras)."""
    if not (model_path.parent / "config.json").is_file():
        return None
    return run_folder.read_config(model_path.parent)


def _model_and_data(args, target: bool, run: dict | None):
    model = training.load_model(args.model)
    training.find_layer(model, str(args.model))
    expected = run_folder.trained_features(args.model)
    data = data_lib.load(
        args.data, target=target, expected_features=expected, **csv_columns(args, run)
    )
    training.check_features(model, data, str(args.model))
    return model, data


def _outputs(model, data, indices: np.ndarray, batch_size: int):
    """The model's `y (len(indices), T)` and final states `h (len(indices), units)`."""
    outputs = training.sequence_model(model).predict(
        data_lib.evaluation_dataset(data, indices, batch_size), verbose=0
    )
    return outputs[0][..., 0], outputs[1]


def _scored(args, data: data_lib.SequenceData, run: dict | None) -> tuple[np.ndarray, str]:
    """The sequences `evaluate --split` scores, and the words that say which."""
    own = run is not None and data_lib.fingerprint(data) == run["data"]["sha256"]
    if own:
        train_idx, val_idx = data_lib.split(len(data.x), run["validation_split"], run["seed"])
    if args.split == "all":
        words = f"all {count(len(data.x), 'sequence')}"
        if own and len(val_idx):
            words += (
                f" ({len(train_idx)} the run trained on; --split validation scores the "
                f"{len(val_idx)} it held out)"
            )
        return np.arange(len(data.x)), words
    if run is None:
        raise RunError(
            f"--split {args.split} needs the run that trained {args.model}, but "
            f"{args.model.parent} holds no config.json"
        )
    if not own:
        raise RunError(
            f"--split {args.split} needs the data {args.model} was trained on "
            f"({run['data']['path']}); {data.source} holds other data"
        )
    indices = val_idx if args.split == "validation" else train_idx
    if not len(indices):
        raise RunError(f"{args.model.parent} held out no sequences (validation split 0)")
    steps = count(int(data.mask[indices].sum()), "real step")
    return indices, f"the {count(len(indices), args.split + ' sequence')} of the run ({steps})"


def evaluate(args) -> int:
    run = _run_of(args.model)
    model, data = _model_and_data(args, True, run)
    indices, scored = _scored(args, data, run)
    y_pred, _ = _outputs(model, data, indices, args.batch_size)
    mask, y = data.mask[indices], data.y[indices]
    error = (y_pred - y)[mask]
    mse = float(np.mean(error**2))
    r2 = training.format_r2(training.r_squared(y, y_pred, mask), digits=6)
    print(f"{args.model} on {describe(data)}: {count(int(data.mask.sum()), 'real step')}")
    print(f"scored: {scored}")
    print(f"mse {mse:.6g}  rmse {np.sqrt(mse):.6g}  mae {np.mean(np.abs(error)):.6g}  r2 {r2}")
    return 0


def _check_output(args) -> None:
    """Refuses a `predict --output` that would overwrite the data, or any file unasked."""
    output = args.output
    if output.suffix not in (".npz", ".csv"):
        raise RunError(f"--output {output}: use a .npz or .csv file name")
    if not output.exists():
        return
    if args.data.exists() and os.path.samefile(output, args.data):
        raise RunError(f"--output {output} is the --data file; write predictions to another file")
    if not args.overwrite:
        raise RunError(f"--output {output} already exists; --overwrite replaces it")


def predict(args) -> int:
    _check_output(args)
    run = _run_of(args.model)
    model, data = _model_and_data(args, False, run)
    y_pred, h = _outputs(model, data, np.arange(len(data.x)), args.batch_size)
    y_pred = np.where(data.mask, y_pred, 0.0).astype(np.float32)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix == ".npz":
        arrays = {"y_pred": y_pred, "h": h, "mask": data.mask, "ids": np.array(data.ids)}
        run_folder.atomic_write(args.output, lambda tmp: np.savez(tmp, **arrays))
    else:
        columns = csv_columns(args, run)
        run_folder.atomic_write(args.output, lambda tmp: _write_csv(tmp, columns, data, y_pred, h))
    print(
        f"wrote {args.output}: predictions y_pred for {count(int(data.mask.sum()), 'step')} of "
        f"{count(len(data.x), 'sequence')} and their final states h "
        f"({count(h.shape[1], 'unit')})"
    )
    return 0


def _write_csv(path, columns, data, y_pred, h) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        units = [f"h_{k + 1}" for k in range(h.shape[1])]
        writer.writerow([columns["id_column"], columns["time_column"], "y_pred", *units])
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
                model,
                args.output,
                version=args.version,
                jit_compile=args.jit,
                warmup=args.warmup,
                feature_names=run_folder.trained_features(args.model),
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
    variables = getattr(loaded, "variables", [])
    names = saved_feature_names(loaded)
    print(f"features: {', '.join(names) if names else 'not stored with the export'}")
    print(f"parameters: {sum(int(np.prod(v.shape)) for v in variables):,}")
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    print(f"warm-up requests: {'yes' if warmup.is_file() else 'no'}")
    return 0


def _shape(shape) -> str:
    return "any shape (checked when called)" if shape.rank is None else str(tuple(shape.as_list()))
