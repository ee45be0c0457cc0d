"""Custom potential: give GradientRNN your own scalar network F (about 15 s on 2 cores).

F below is a hand-written Keras layer, a quadratic form in the state plus a small MLP:

    F(x, h) = 0.5 h^T A h + w . softplus(W [x, h] + b)        so    h_t = A_sym h + (MLP part)

`GradientRNN(potential=...)` computes h_t = dF/dh with a nested GradientTape (no closed form
is known for an arbitrary layer). Registering the class with Keras lets the trained model save
and reload with no `custom_objects`. The script checks that training cuts the loss and that the
reloaded model gives the same predictions.
"""

import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_gradrnn  # noqa: E402


@keras.saving.register_keras_serializable(package="examples")
class QuadraticPlusMLP(keras.layers.Layer):
    """F(z) with z = concat([x, h]) of shape (batch, features + units); returns (batch, 1).

    The state is the last `units` columns of z: GradientRNN always passes x first, then h.
    """

    def __init__(self, units: int, hidden: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.units, self.hidden = units, hidden
        self.mlp = keras.layers.Dense(hidden, activation="softplus", name="mlp")
        self.out = keras.layers.Dense(1, name="out")

    def build(self, input_shape):
        self.a = self.add_weight(
            name="a", shape=(self.units, self.units), initializer=keras.initializers.Identity(0.3)
        )
        self.mlp.build(input_shape)
        self.out.build((input_shape[0], self.hidden))

    def call(self, z):
        h = z[:, -self.units :]  # (batch, units)
        quadratic = 0.5 * keras.ops.sum((h @ self.a) * h, axis=-1, keepdims=True)
        return quadratic + self.out(self.mlp(z))  # (batch, 1)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden": self.hidden}


keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 15, 2)).astype("float32")  # (batch, time, 2)
x_prev = np.pad(x[:, :-1, 0], ((0, 0), (1, 0)))  # x_{t-1}: the model needs memory
y = (x[..., 0] * x_prev + 0.5 * np.sin(x[..., 1])).astype("float32")  # (batch, time)

units = 4
model = keras.Sequential(
    [
        keras.Input((None, 2)),
        tf_gradrnn.GradientRNN(
            units, potential=QuadraticPlusMLP(units, hidden=24), return_sequences=True
        ),  # (batch, time, 1)
        keras.layers.Reshape((-1,)),  # (batch, time)
    ]
)
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
history = model.fit(x, y, epochs=25, batch_size=32, verbose=0)
losses = history.history["loss"]
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
assert losses[-1] < 0.3 * losses[0], losses

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "custom.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects: the class is registered
potential = reloaded.layers[0].potential
assert isinstance(potential, QuadraticPlusMLP) and potential.hidden == 24
np.testing.assert_array_equal(reloaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0))
print("saved and reloaded the model with its custom potential: identical predictions")
