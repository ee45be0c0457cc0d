"""Quickstart: fit a gradient-state RNN to sequences with model.fit (about 15 s on 2 cores)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_gradrnn  # noqa: E402

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).standard_normal((512, 20, 3)).astype("float32")  # (batch, time, 3)
x_prev = np.pad(x[:, :-1, 0], ((0, 0), (1, 0)))  # x_{t-1}: the model needs memory
y = x[..., 0] * x_prev + 0.5 * np.sin(x[..., 1])  # (batch, time)

model = keras.Sequential(
    [
        keras.Input((None, 3)),
        tf_gradrnn.GradientRNN(8, hidden_units=(32, 32), return_sequences=True),  # (b, t, 1)
        keras.layers.Reshape((-1,)),  # (batch, time)
    ]
)
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse", jit_compile=True)
history = model.fit(x, y, epochs=40, batch_size=32, verbose=0)
print(f"loss {history.history['loss'][0]:.4f} -> {history.history['loss'][-1]:.4f}")
assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
