"""Wrote tests/data/legacy_models.keras and .npz with tf_gradrnn 0.1.0 (commit 9ae1f86).

Kept for the record: do not rerun it. The files it wrote pin what a model saved by that
release looks like; tests/test_legacy_models.py checks that every later version still loads
them and gives the same outputs.
"""

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np

import tf_gradrnn

keras.utils.set_random_seed(0)
x = keras.Input((None, 3), name="x")
a = tf_gradrnn.GradientRNN(
    4, hidden_units=(8,), state_bound=3.0, return_sequences=True, name="grad_rnn"
)(x)
user = keras.Sequential(
    [keras.Input((7,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)],
    name="user_potential",
)
b = tf_gradrnn.GradientRNN(4, potential=user, return_sequences=True, name="grad_rnn_user")(x)

c = tf_gradrnn.HamiltonianRNN(
    2, hidden_units=(8,), dt=0.1, control=False, return_sequences=True, name="ham_rnn"
)(x)
z = keras.layers.GlobalAveragePooling1D(name="pool")(x)
pot = tf_gradrnn.MLPPotential((6,), name="mlp_potential")
d = tf_gradrnn.ScalarGradient(pot, name="scalar_gradient")(z)
outputs = [a, b, c] + (list(d) if isinstance(d, (list, tuple)) else [d])
model = keras.Model(x, outputs)
xs = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
ys = model.predict(xs, verbose=0)
model.save("tests/data/legacy_models.keras")
np.savez("tests/data/legacy_models.npz", x=xs, **{f"y{i}": y for i, y in enumerate(ys)})
print([y.shape for y in ys])
