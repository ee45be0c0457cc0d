"""A `.keras` file saved by tf_gradrnn 0.1.0 still loads, with no `custom_objects`, and gives
the outputs it gave then: the registered names and config keys are a contract with every file
users have saved (`tests/data/make_legacy_models.py` wrote it; it is not rerun)."""

from pathlib import Path

import keras
import numpy as np

import tf_gradrnn  # noqa: F401  (importing the package registers its classes with Keras)

DATA = Path(__file__).parent / "data"


def test_model_saved_by_0_1_0_loads_and_predicts_the_same():
    model = keras.saving.load_model(DATA / "legacy_models.keras")
    saved = np.load(DATA / "legacy_models.npz")
    outputs = model.predict(saved["x"], verbose=0)
    assert len(outputs) == 5
    for i, output in enumerate(outputs):
        np.testing.assert_allclose(output, saved[f"y{i}"], rtol=1e-6, atol=1e-6)
    names = {type(layer).__name__ for layer in model.layers}
    assert {"GradientRNN", "HamiltonianRNN", "ScalarGradient"} <= names
