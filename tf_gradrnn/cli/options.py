"""The options of the `tf-gradrnn` command: the values each accepts, and the training options'
defaults and help (`parser` turns them into flags; a run's `config.json` records them).

Standard library only, like `parser`: `tf_gradrnn_launcher` loads both without the package.
"""

import argparse
import math
from typing import NamedTuple

STRATEGIES = ("default", "mirrored", "multi-worker")
# Training differentiates F's gradient h = dF/dh once more: F's activation must be twice
# differentiable (MLPPotential's docstring); these are the ones Keras names.
ACTIVATIONS = ("tanh", "sigmoid", "softplus", "gelu", "silu")
_PIECEWISE_LINEAR = ("relu", "relu6", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_tanh")
SEED_MAX = 2**32 - 1  # keras.utils.set_random_seed seeds NumPy's legacy generator
# The .csv columns of --data, and their defaults.
COLUMNS = {"id_column": "sequence", "time_column": "step", "target_column": "y"}
COLUMNS["feature_columns"] = None  # every other column


def positive(kind, zero_allowed: bool = False):
    """An argparse type: a finite number of `kind` above zero (or at least zero)."""
    words = "0 or more" if zero_allowed else "positive"

    def parse(text):
        value = kind(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < 0 or (value == 0 and not zero_allowed):
            raise argparse.ArgumentTypeError(f"must be {words}, got {text}")
        return value

    parse.__name__ = f"{words} {kind.__name__}"
    return parse


def seed(text: str) -> int:
    """An argparse type: a seed that every generator a run seeds accepts."""
    value = int(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to {SEED_MAX}, got {text}")
    return value


def activation(name: str) -> str:
    """An argparse type: a twice-differentiable activation's name."""
    choices = ", ".join(ACTIVATIONS)
    if name in _PIECEWISE_LINEAR:
        raise argparse.ArgumentTypeError(
            f"{name} is not twice differentiable: its second derivative is zero almost "
            "everywhere, so the state h = dF/dh is piecewise constant in the inputs and the "
            f"previous state, and no gradient flows through time; use one of {choices}"
        )
    if name not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(
            f"{name!r} is not one of the twice-differentiable activations {choices}"
        )
    return name


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def hidden_units(text: str) -> list[int]:
    return [positive(int)(u) for u in names(text)]


class Option(NamedTuple):
    """A training option: its default, argparse type (None: a --name/--no-name switch),
    metavar and help."""

    default: object
    type: object
    metavar: str | None
    help: str

    @property
    def shown(self) -> str:
        """The default as typed on the command line."""
        d = self.default
        return ",".join(map(str, d)) if isinstance(d, list) else str(d)


TRAIN_OPTIONS = {
    "units": Option(8, positive(int), "N", "size of the state h"),
    "hidden_units": Option(
        [32, 32], hidden_units, "N,N", "widths of F's hidden layers, comma-separated"
    ),
    "activation": Option(
        "tanh",
        activation,
        "NAME",
        f"F's activation, twice differentiable: {', '.join(ACTIVATIONS)}",
    ),
    "epochs": Option(50, positive(int), "N", "maximum number of epochs"),
    "batch_size": Option(32, positive(int), "N", "sequences per batch"),
    "learning_rate": Option(3e-3, positive(float), "RATE", "Adam's learning rate"),
    "clip_norm": Option(
        1.0,
        positive(float, zero_allowed=True),
        "NORM",
        "clip the gradient's global norm; 0 does not",
    ),
    "validation_split": Option(
        0.2, fraction, "FRACTION", "share of sequences held out, chosen by --seed"
    ),
    "patience": Option(
        10,
        positive(int, zero_allowed=True),
        "N",
        "stop after this many epochs without a lower validation loss and keep the best "
        "epoch's weights; 0 never stops",
    ),
    "jit": Option(True, None, None, "compile the training step with XLA"),
    "seed": Option(
        0, seed, "N", "seed of the initial weights, the validation split and the batch order"
    ),
}
# The options of a run, as config.json records them.
DEFAULTS = {name: option.default for name, option in TRAIN_OPTIONS.items()}
