"""The argument parser of the `tf-gradrnn` command: its verbs, their options and their help.

`tf_gradrnn.cli` runs the verbs. Every option's help ends with its default (or says it is
required), and a usage error is one line on stderr with exit status 2.
"""

import argparse
from pathlib import Path

import tf_gradrnn
from tf_gradrnn.cli import demo, strategies
from tf_gradrnn.cli.training import DEFAULTS

# The first line of `tf_gradrnn.cli`'s docstring: what `tf-gradrnn --help` says first.
DESCRIPTION = "The `tf-gradrnn` command: demo, train, evaluate, predict, export and inspect."


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag(parser, *names, default=None, help="", **kwargs):
    """Adds an option whose help ends with its default."""
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    suffix = f" (default: {shown})" if default is not None else ""
    parser.add_argument(*names, default=default, help=help + suffix, **kwargs)


def _data_flags(parser, target_help: str, required: bool = True) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        required=required,
        help=".npz (x, y, optional mask or lengths), long-format .csv, or a folder of "
        ".tfrecord files (formats: see the README); required"
        + ("" if required else " unless --resume"),
    )
    name = {"metavar": "NAME"}
    _flag(parser, "--id-column", default="sequence", help=".csv column naming the sequence", **name)
    _flag(parser, "--time-column", default="step", help=".csv column ordering its rows", **name)
    _flag(parser, "--target-column", default="y", help=f".csv column of y, {target_help}", **name)
    parser.add_argument(
        "--feature-columns",
        type=_names,
        metavar="NAMES",
        help=".csv feature columns, comma-separated (default: every other column)",
    )


def _model_argument(parser) -> None:
    """The `MODEL` of the verbs that read a run's model (evaluate, predict, export)."""
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="a .keras model (a run's model.keras)"
    )


def _batch_size_flag(parser) -> None:
    """`--batch-size` of the verbs that run a model on data (evaluate, predict)."""
    _flag(
        parser,
        "--batch-size",
        type=_bounded(int),
        default=256,
        metavar="N",
        help="sequences per batch",
    )


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _bounded(kind, zero_allowed: bool = False):
    """An argparse type: a number of `kind` above zero (or at least zero)."""
    words = "0 or more" if zero_allowed else "positive"

    def parse(text):
        value = kind(text)
        if value < 0 or (value == 0 and not zero_allowed):
            raise argparse.ArgumentTypeError(f"must be {words}, got {text}")
        return value

    parse.__name__ = f"{words} {kind.__name__}"
    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _hidden_units(text: str) -> list[int]:
    return [_bounded(int)(u) for u in _names(text)]


# Help for the training options; their defaults are training.DEFAULTS.
TRAIN_OPTIONS = {
    "units": (_bounded(int), "N", "size of the state h"),
    "hidden_units": (_hidden_units, "N,N", "widths of F's hidden layers, comma-separated"),
    "activation": (str, "NAME", "F's activation, twice differentiable: tanh, softplus, gelu"),
    "epochs": (_bounded(int), "N", "maximum number of epochs"),
    "batch_size": (_bounded(int), "N", "sequences per batch"),
    "learning_rate": (_bounded(float), "RATE", "Adam's learning rate"),
    "clip_norm": (
        _bounded(float, zero_allowed=True),
        "NORM",
        "clip the gradient's global norm; 0 does not",
    ),
    "validation_split": (_fraction, "FRACTION", "share of sequences held out, chosen by --seed"),
    "patience": (
        _bounded(int, zero_allowed=True),
        "N",
        "stop after this many epochs without a lower validation loss and keep the best "
        "epoch's weights; 0 never stops",
    ),
    "jit": (None, None, "compile the training step with XLA"),
    "seed": (int, "N", "seed of the initial weights, the validation split and the batch order"),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser = _Parser(prog="tf-gradrnn", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=tf_gradrnn.__version__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)

    def verb(name, help):
        return verbs.add_parser(name, help=help, description=help, parents=[common])

    sub = verb("demo", "train a student on a known teacher's sequences, plot, save and export")
    demo.add_arguments(sub)

    sub = verb("train", "train a GradientRNN on sequences; writes a run folder")
    _data_flags(sub, "the target", required=False)
    sub.add_argument(
        "--output", type=Path, metavar="RUN", help="the run folder (default: runs/<data name>)"
    )
    sub.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue the interrupted run in RUN with the options in RUN/config.json "
        "(default: start a new run)",
    )
    for name, (kind, metavar, text) in TRAIN_OPTIONS.items():
        default = DEFAULTS[name]
        if kind is None:  # a switch: --jit / --no-jit
            shown = "--" + "no-" * (not default) + name
            kwargs = {"action": argparse.BooleanOptionalAction}
        else:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            kwargs = {"type": kind, "metavar": metavar}
        # The default stays out of args, so that --resume can tell which options were typed.
        flag = "--" + name.replace("_", "-")
        help = f"{text} (default: {shown})"
        sub.add_argument(flag, default=argparse.SUPPRESS, help=help, **kwargs)
    sub.add_argument(
        "--strategy",
        choices=strategies.STRATEGIES,
        default="default",
        help="default: this process' device; mirrored: every GPU of this machine (or its "
        "logical CPU devices); multi-worker: the cluster in TF_CONFIG, every worker running "
        "this same command (worker 0 writes the run folder). XLA is off under mirrored and "
        "multi-worker (default: default)",
    )
    sub.add_argument("--crash-after-epoch", type=int, help=argparse.SUPPRESS)  # tests only

    sub = verb("evaluate", "the loss and fit of a model on sequences")
    _model_argument(sub)
    _data_flags(sub, "the target")
    _batch_size_flag(sub)

    sub = verb("predict", "write a model's outputs and final states for sequences")
    _model_argument(sub)
    _data_flags(sub, "ignored if present")
    sub.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        required=True,
        help=".npz (y_pred (n, T), h (n, units), mask, ids) or long-format .csv (one row per "
        "step: id, time, y_pred, h_1..h_units = the sequence's final state); required",
    )
    _batch_size_flag(sub)

    sub = verb("export", "export a model as a versioned SavedModel for TensorFlow Serving")
    _model_argument(sub)
    sub.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        required=True,
        help="the TF Serving model folder (its base path), created if missing; required",
    )
    sub.add_argument(
        "--version", type=_bounded(int), metavar="N", help="version (default: the next free one)"
    )
    sub.add_argument(
        "--jit", action="store_true", help="mark the signatures for XLA (default: off)"
    )
    sub.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        help="write TF Serving warm-up requests (default: when tensorflow-serving-api is "
        "installed)",
    )

    sub = verb("inspect", "summary, signatures and parameter count of a model")
    sub.add_argument(
        "model", type=Path, metavar="MODEL", help="a .keras file or a SavedModel (version) folder"
    )
    return parser
