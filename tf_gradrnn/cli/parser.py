"""The `tf-gradrnn` command: demo, train, evaluate, predict, export and inspect.

This module is its argument parser: the verbs and their flags, built from `options`;
`tf_gradrnn.cli.commands` runs the verbs. Every option's help ends with its default (or says
it is required), and a usage error is one line on stderr, pointing to the verb's `--help`,
with exit status 2.

It imports only the standard library: `tf_gradrnn_launcher` runs it without the package
(whose import imports TensorFlow), to answer `--help`, `--version` and usage errors.
"""

import argparse
import ast
from pathlib import Path

from tf_gradrnn.cli.options import COLUMNS, STRATEGIES, TRAIN_OPTIONS, names, positive

DESCRIPTION = __doc__.splitlines()[0]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)  # --epoch is not --epochs
        self.verbs = None

    def error(self, message):  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:  # an option of no verb: the verb's help lists the options it has
            verb = self.verbs.choices[parsed.verb] if self.verbs else self
            verb.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed


def package_version() -> str:
    """`tf_gradrnn.__version__`, read from the package's `__init__.py` without running it (that
    imports TensorFlow), as setuptools' `attr:` versions are read."""
    source = (Path(__file__).parents[1] / "__init__.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "__version__"
        ]:
            return ast.literal_eval(node.value)
    raise RuntimeError("tf_gradrnn/__init__.py sets no __version__")


def _data_flags(parser, target_help: str, verb: str) -> None:
    """--data and its .csv columns; evaluate and predict default to the columns the model's
    run recorded (RUN/config.json next to RUN/model.keras)."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        required=verb != "train",
        help=".npz (x, y, optional mask or lengths), long-format .csv, or a folder of "
        ".tfrecord files (formats: see the README); required"
        + (" unless --resume" if verb == "train" else ""),
    )
    helps = {
        "id_column": ".csv column naming the sequence",
        "time_column": ".csv column ordering its rows",
        "target_column": f".csv column of y, {target_help}",
        "feature_columns": ".csv feature columns, comma-separated",
    }
    for name, default in COLUMNS.items():
        shown = default or "every other column"
        if verb != "train":
            used = "columns" if name == "feature_columns" else "column"
            shown, default = f"the {used} the model's run used, else {shown}", None
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=names if name == "feature_columns" else str,
            default=default,
            metavar="NAMES" if name == "feature_columns" else "NAME",
            help=f"{helps[name]} (default: {shown})",
        )


def _model_argument(parser) -> None:
    """The `MODEL` of the verbs that read a run's model (evaluate, predict, export)."""
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="a .keras model (a run's model.keras)"
    )


def _batch_size_flag(parser) -> None:
    """`--batch-size` of the verbs that run a model on data (evaluate, predict)."""
    parser.add_argument(
        "--batch-size",
        type=positive(int),
        default=256,
        metavar="N",
        help="sequences per batch (default: 256)",
    )


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, for `tf-gradrnn demo` and `python -m tf_gradrnn.cli.demo`."""
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        default=Path("runs/demo"),
        help="folder for the model, the plots and the SavedModel (default: runs/demo)",
    )
    parser.add_argument(
        "--epochs",
        type=positive(int),
        metavar="N",
        default=150,
        help="training epochs (default: 150)",
    )
    parser.add_argument(
        "--no-jit", dest="jit", action="store_false", help="train without XLA (default: XLA on)"
    )
    parser.add_argument(
        "--export-dir",
        type=Path,
        metavar="DIR",
        default=None,
        help="TF Serving model folder that receives the next SavedModel version "
        "(default: OUTPUT/saved_model)",
    )


def _train_arguments(sub) -> None:
    _data_flags(sub, "the target", "train")
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
    for name, option in TRAIN_OPTIONS.items():
        if option.type is None:  # a switch: --jit / --no-jit
            shown = "--" + "no-" * (not option.default) + name
            kwargs = {"action": argparse.BooleanOptionalAction}
        else:
            shown = option.shown
            kwargs = {"type": option.type, "metavar": option.metavar}
        # The default stays out of args, so that --resume can tell which options were typed.
        flag = "--" + name.replace("_", "-")
        help = f"{option.help} (default: {shown})"
        sub.add_argument(flag, default=argparse.SUPPRESS, help=help, **kwargs)
    sub.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: this process' device; mirrored: every GPU of this machine (or its "
        "logical CPU devices); multi-worker: the cluster in TF_CONFIG, every worker running "
        "this same command (worker 0 writes the run folder). XLA is off under mirrored and "
        "multi-worker (default: default)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser = _Parser(prog="tf-gradrnn", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=package_version())
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    parser.verbs = verbs

    def verb(name, help):
        return verbs.add_parser(name, help=help, description=help, parents=[common])

    add_demo_arguments(
        verb("demo", "train a student on a known teacher's sequences, plot, save and export")
    )
    _train_arguments(verb("train", "train a GradientRNN on sequences; writes a run folder"))

    sub = verb("evaluate", "the loss and fit of a model on sequences")
    _model_argument(sub)
    _data_flags(sub, "the target", "evaluate")
    sub.add_argument(
        "--split",
        choices=("all", "validation", "training"),
        default="all",
        help="the sequences scored: all, or those the model's run held out (validation) or "
        "trained on (training), which needs the run's own data (default: all)",
    )
    _batch_size_flag(sub)

    sub = verb("predict", "write a model's outputs and final states for sequences")
    _model_argument(sub)
    _data_flags(sub, "ignored if present", "predict")
    sub.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        required=True,
        help=".npz (y_pred (n, T), h (n, units), mask, ids) or long-format .csv (one row per "
        "step: id, time, y_pred, h_1..h_units = the sequence's final state); required",
    )
    sub.add_argument(
        "--overwrite",
        action="store_true",
        help="replace FILE if it exists (default: refuse; never the --data file)",
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
        "--version",
        type=positive(int),
        metavar="N",
        help="version (default: the next free one)",
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
