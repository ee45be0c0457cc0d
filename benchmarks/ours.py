"""tf_gradrnn's model of `benchmarks/spec.py`, with the interface of the peers' `Model`.

    as_input(array)                     NumPy -> a tf.Tensor, once before timing
    infer(x) -> y                       model.predict_on_batch: (B, T, 1), a NumPy array
    train_step(x, y) -> loss            model.train_on_batch: one SGD step on the MSE

With `own_function=True`, `infer` and `train_step` instead call one tf.function of the model
(a custom training step: tape, MSE, `model.optimizer.apply`), as a custom TensorFlow loop
would, without Keras' per-call Python around it.
    loss_and_gradients(x, y)            the MSE and its gradient for each weight, by a
                                        tf.GradientTape around the model's call (NumPy)

Only the public API: `tf_gradrnn.GradientRNN` in a `keras.Sequential`, compiled with SGD and
MSE, `jit_compile` as given (`True` is XLA; Keras' "auto" means no XLA on CPU).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402


def build_model(
    size, weights, jit_compile: bool, learning_rate: float = 1e-3, layer_args=None, **compile_args
):
    """x: (B, T, D) -> y: (B, T, 1); its dtype is the weights' dtype. `layer_args` go to
    GradientRNN, `compile_args` to `model.compile`."""
    dtype = str(np.asarray(weights[0]).dtype)
    layer = tf_gradrnn.GradientRNN(
        size.units,
        hidden_units=(size.hidden, size.hidden),
        return_sequences=True,
        dtype=dtype,
        **(layer_args or {}),
    )
    model = keras.Sequential([keras.Input((None, size.features), dtype=dtype), layer])
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="mse",
        jit_compile=jit_compile,
        **compile_args,
    )
    return model


class Model:
    def __init__(
        self,
        size,
        weights,
        jit_compile: bool = True,
        learning_rate: float = 1e-3,
        own_function: bool = False,
    ):
        self.model = build_model(size, weights, jit_compile, learning_rate)
        self.dtype = self.model.layers[0].compute_dtype
        if own_function:
            self.infer = self._function_infer(jit_compile)
            self.train_step = self._function_train_step(jit_compile)

    def as_input(self, array):
        return tf.constant(np.asarray(array), self.dtype)

    def infer(self, x):
        return self.model.predict_on_batch(x)

    def train_step(self, x, y):
        return float(self.model.train_on_batch(x, y))

    def _function_infer(self, jit_compile):
        """The model called in one tf.function, as a custom inference loop would."""
        forward = tf.function(lambda x: self.model(x, training=False), jit_compile=jit_compile)
        return lambda x: forward(x).numpy()

    def _function_train_step(self, jit_compile):
        """A custom training step in one tf.function: tape, MSE, the model's SGD optimizer."""
        model = self.model

        @tf.function(jit_compile=jit_compile)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply(grads, model.trainable_variables)
            return loss

        return lambda x, y: float(step(x, y))

    def loss_and_gradients(self, x, y):
        weights = self.model.trainable_weights
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.model(x, training=True) - y))
        return float(loss), [g.numpy() for g in tape.gradient(loss, weights)]

    def weights(self):
        return self.model.get_weights()
