"""Every public layer of the package, small, with inputs: what the cross-cutting tests
(conformance, mixed precision) run over. A layer is made when asked for, so it takes the dtype
policy active at that moment, as a user's layer would."""

import keras
import numpy as np

from tf_gradrnn import (
    GradientRNN,
    GradientRNNCell,
    HamiltonianCell,
    HamiltonianRNN,
    MLPPotential,
    ScalarGradient,
)

BATCH, STEPS, FEATURES = 2, 5, 3

# name -> (make the layer, input shape without the batch axis)
LAYERS = {
    "GradientRNN": (
        lambda: GradientRNN(3, hidden_units=(4,), return_sequences=True),
        (STEPS, FEATURES),
    ),
    "RNN(GradientRNNCell)": (
        lambda: keras.layers.RNN(GradientRNNCell(3, hidden_units=(4,)), return_sequences=True),
        (STEPS, FEATURES),
    ),
    "HamiltonianRNN": (
        lambda: HamiltonianRNN(2, hidden_units=(4,), control=True, return_sequences=True),
        (STEPS, FEATURES),
    ),
    "RNN(HamiltonianCell)": (
        lambda: keras.layers.RNN(
            HamiltonianCell(2, hidden_units=(4,), control=True), return_sequences=True
        ),
        (STEPS, FEATURES),
    ),
    "MLPPotential": (lambda: MLPPotential((4,)), (FEATURES,)),
    "ScalarGradient": (lambda: ScalarGradient(MLPPotential((4,))), (FEATURES,)),
}
RECURRENT = [name for name, (_, shape) in LAYERS.items() if len(shape) == 2]


def inputs(name: str, seed: int = 0) -> np.ndarray:
    shape = (BATCH, *LAYERS[name][1])
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype("float32")


def model_of(name: str) -> tuple[keras.Model, keras.layers.Layer]:
    """A functional model `Input -> layer` and its layer."""
    layer = LAYERS[name][0]()
    x = keras.Input(LAYERS[name][1])
    return keras.Model(x, layer(x)), layer


def as_list(outputs) -> list:
    """A layer's output(s) as a list of NumPy arrays (ScalarGradient returns two)."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(o, dtype="float32") for o in outputs]


def fit_one_batch(model: keras.Model, x: np.ndarray) -> tuple[float, list, list]:
    """One `model.fit` step towards random targets; returns (loss, weights before, after)."""
    rng = np.random.default_rng(1)
    targets = [rng.uniform(-1, 1, o.shape).astype("float32") for o in as_list(model(x))]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [np.array(w) for w in model.get_weights()]
    history = model.fit(x, targets if len(targets) > 1 else targets[0], verbose=0)
    return history.history["loss"][-1], before, model.get_weights()
