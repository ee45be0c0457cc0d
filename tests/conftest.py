"""Test set-up: TensorFlow backend, quiet logs, a seed and default dtypes for every test."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_restore_dtypes():
    keras.utils.set_random_seed(1234)
    floatx = keras.config.floatx()
    yield
    keras.config.set_floatx(floatx)
    # Also forgets a global dtype policy that a test set (or that Keras cached from floatx).
    keras.backend.clear_session()
