"""A potential whose gradient-state recurrence diverges, for the tests of `NonFiniteGuard`
(test_callbacks.py) and of `state_bound` (test_gradient_rnn.py)."""

import keras
import tensorflow as tf


class QuadraticInState(keras.layers.Layer):
    """F(x, h) = x . v + c |h|^2, so h_t = 2 c h_{t-1} + ...: it grows like (2c)^t for c > 1/2."""

    def __init__(self, features, c=1.5, **kwargs):
        super().__init__(**kwargs)
        self.features, self.c0 = features, c

    def build(self, input_shape):
        self.v = self.add_weight(shape=(input_shape[-1],), initializer="ones")
        self.c = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.c0))

    def call(self, z):
        h = z[:, self.features :]
        return tf.linalg.matvec(z, self.v) + self.c * tf.reduce_sum(h * h, axis=-1)
