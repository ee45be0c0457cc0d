"""The built-in scalar network F: a multilayer perceptron with one output."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from tf_gradrnn import validation


def _softplus_derivative(a):
    # a = log(1 + e^z), so sigmoid(z) = 1 - e^(-a).
    return -tf.math.expm1(-a)


# (a, upstream) -> upstream * act'(z), written with the activation's output a = act(z). tanh and
# sigmoid use TensorFlow's fused gradient kernels, which have registered gradients themselves.
_BACKPROP: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "tanh": lambda a, upstream: tf.raw_ops.TanhGrad(y=a, dy=upstream),
    "sigmoid": lambda a, upstream: tf.raw_ops.SigmoidGrad(y=a, dy=upstream),
    "softplus": lambda a, upstream: upstream * _softplus_derivative(a),
    "linear": lambda a, upstream: upstream,
}


class ClosedForm(NamedTuple):
    """The closed-form pieces of an `MLPPotential` (see `MLPPotential.closed_form_gradient`)."""

    project: Callable
    value_and_gradient: Callable


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class MLPPotential(keras.layers.Layer):
    """A scalar multilayer perceptron F: R^n -> R.

        a_0 = z                                     z: (batch, n)
        a_l = activation(a_{l-1} W_l + b_l)         W_l: (u_{l-1}, u_l), l = 1..L
        F(z) = a_L w_out + b_out                    w_out: (u_L, 1), F: (batch, 1)

    For the activations `tanh`, `sigmoid`, `softplus` and `linear` it also offers dF/dz in
    closed form (`closed_form_gradient`), back-propagation written out:

        delta_L = act'(z_L) * w_out^T,   delta_l = (delta_{l+1} W_{l+1}^T) * act'(z_l),
        dF/dz = delta_1 W_1^T

    which an enclosing tape differentiates once, instead of differentiating a nested tape.

    Its weights come in the order `[W_1, b_1, ..., W_L, b_L, w_out, b_out]`, a public contract
    (`get_weights` / `set_weights`). For second-order training through `dF/dz` the activation
    must be twice differentiable: `tanh`, `softplus`, `sigmoid`, `gelu`, `silu` are; `relu` gives
    a piecewise-constant gradient whose own derivative with respect to the inputs is zero.

    Args:
        hidden_units: widths `(u_1, ..., u_L)` of the hidden layers, at least one.
        activation: activation of the hidden layers (name or callable).
        kernel_initializer: initializer of every `W`.
        bias_initializer: initializer of every `b`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        z: `(batch, n)` floating-point tensor.

    Returns:
        `(batch, 1)` values of F.

    Example:

    ```python
    f = MLPPotential(hidden_units=(32, 32))
    y = f(np.zeros((4, 5), "float32"))  # (4, 1)
    ```
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (64, 64),
        activation="tanh",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.hidden_layers = [
            keras.layers.Dense(
                u,
                activation=self.activation,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name=f"hidden_{i}",
            )
            for i, u in enumerate(self.hidden_units)
        ]
        self.output_layer = keras.layers.Dense(
            1,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="output",
        )

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)
        self.output_layer.build(shape)

    def call(self, z):
        for layer in self.hidden_layers:
            z = layer(z)
        return self.output_layer(z)

    @property
    def has_closed_form_gradient(self) -> bool:
        """Whether `closed_form_gradient` supports this potential's activation."""
        return getattr(self.activation, "__name__", None) in _BACKPROP

    def closed_form_gradient(self, features: int, weights: Sequence | None = None):
        """Splits F(x, h) at column `features` of its input into two functions.

            project(x) = x W_1[:features] + b_1           x: (batch, features) -> p: (batch, u_1)
            value_and_gradient(p, h) = (F, dF/dh) at z = [x, h] with p = project(x)
                                          p: (batch, u_1), h: (batch, m) -> (batch,), (batch, m)

        where m = n - features is the size of the state part of z.

        `GradientRNNCell` applies `project` at every step: projecting a whole sequence in one
        matmul before the loop was measured slower. The weights are read when this method is
        called, or taken from `weights`: tensors in `get_weights()` order, for code that must
        pass them explicitly (a `tf.recompute_grad` function inside a loop differentiates its
        arguments, not the variables it reads).

        Returns:
            `ClosedForm(project, value_and_gradient)`.

        Raises:
            ValueError: if the activation has no closed-form derivative here.
        """
        name = getattr(self.activation, "__name__", repr(self.activation))
        if name not in _BACKPROP:
            raise ValueError(
                f"MLPPotential has no closed-form gradient for activation '{name}'; "
                f"supported: {sorted(_BACKPROP)}."
            )
        backprop = _BACKPROP[name]
        if weights is None:
            # Read each variable once, here, rather than at every use inside a caller's time
            # loop: a read inside the loop makes the backward pass keep a copy of the weight
            # per step (seen in XLA's HLO; benchmarks/RESULTS.md, "weights read once").
            weights = [
                tf.convert_to_tensor(w)
                for layer in (*self.hidden_layers, self.output_layer)
                for w in layer.weights
            ]
        kernels, biases = weights[0::2], weights[1::2]
        w_x = kernels[0][:features]
        w_h = kernels[0][features:]
        b_1 = biases[0]
        hidden = list(zip(kernels[1:-1], biases[1:-1], strict=True))
        w_out = kernels[-1][:, 0]
        b_out = biases[-1][0]
        activation = self.activation

        def project(x):
            return tf.matmul(x, w_x) + b_1

        def value_and_gradient(projected, h):
            a = activation(projected + tf.matmul(h, w_h))
            outputs = [a]
            for kernel, bias in hidden:
                a = activation(tf.matmul(a, kernel) + bias)
                outputs.append(a)
            f = tf.linalg.matvec(a, w_out) + b_out
            a = outputs.pop()
            # Not broadcast_to(w_out): its gradient needs static shapes under XLA.
            delta = backprop(a, tf.ones_like(a)) * w_out
            for (kernel, _), a in zip(reversed(hidden), reversed(outputs), strict=True):
                delta = backprop(a, tf.matmul(delta, kernel, transpose_b=True))
            return f, tf.matmul(delta, w_h, transpose_b=True)

        return ClosedForm(project, value_and_gradient)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (1,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
