"""Teacher-student recovery: does a student learn the teacher's dynamics? (about 20 s on 2 cores)

A "teacher" GradientRNN with fixed random weights produces outputs y_t from random inputs.
A student of the same shape, trained only on (x_t, y_t) of 12-step sequences, must then

- predict the teacher's outputs on held-out sequences three times longer (36 steps), which it
  can only do if it learned the recurrence, not the training sequences;
- have the teacher's states h_t, up to a rotation: F'(x, h) = F(x, Q h) gives the same outputs
  with states Q^T h for any orthogonal Q, so states are compared after the best such Q.

The script checks both.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_gradrnn  # noqa: E402

FEATURES, UNITS, HIDDEN = 2, 3, (16,)
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)


def states_and_outputs(layer, x):
    """Runs `layer` keeping every output and state: y (n, T), h (n, T, UNITS)."""
    y, (h,) = layer.run_with_states(x)
    return np.asarray(y)[..., 0], np.asarray(h)


# The teacher: weights 0.8 N(0, 1/fan_in), small biases.
teacher = tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, return_sequences=True)
teacher.build((None, None, FEATURES))
teacher.set_weights(
    [
        0.8 * rng.standard_normal(w.shape) / np.sqrt(w.shape[0])
        if w.ndim == 2
        else 0.1 * rng.standard_normal(w.shape)
        for w in teacher.get_weights()
    ]
)
x_train = rng.standard_normal((512, 12, FEATURES)).astype("float32")  # (batch, 12, 2)
x_test = rng.standard_normal((128, 36, FEATURES)).astype("float32")  # (batch, 36, 2)
y_train, _ = states_and_outputs(teacher, x_train)
y_test, h_test = states_and_outputs(teacher, x_test)

student = keras.Sequential(
    [
        keras.Input((None, FEATURES)),
        tf_gradrnn.GradientRNN(UNITS, hidden_units=HIDDEN, return_sequences=True),  # (b, t, 1)
        keras.layers.Reshape((-1,)),  # (batch, time)
    ]
)
student.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
history = student.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0)
print(f"train loss {history.history['loss'][0]:.4g} -> {history.history['loss'][-1]:.4g}")

y_pred, h_pred = states_and_outputs(student.layers[0], x_test)
r2 = 1.0 - np.mean((y_pred - y_test) ** 2) / np.var(y_test)

# The orthogonal Q that best maps the student's states onto the teacher's (Procrustes).
a, b = h_pred.reshape(-1, UNITS), h_test.reshape(-1, UNITS)
u, _, vt = np.linalg.svd(a.T @ b)
state_error = np.linalg.norm(a @ (u @ vt) - b) / np.linalg.norm(b)
print(f"on 36-step held-out sequences: outputs R^2 = {r2:.4f}, ", end="")
print(f"states relative error (up to rotation) = {state_error:.3f}")
assert r2 > 0.95, r2
assert state_error < 0.3, state_error
