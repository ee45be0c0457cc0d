"""The built-in scalar network F: a multilayer perceptron with one output."""

from collections.abc import Sequence

import keras


def validate_hidden_units(hidden_units: Sequence[int]) -> tuple[int, ...]:
    """Returns `hidden_units` as a tuple of positive ints, or raises ValueError."""
    if isinstance(hidden_units, int):
        hidden_units = (hidden_units,)
    units = tuple(hidden_units)
    if not units:
        raise ValueError(
            "hidden_units must name at least one hidden layer, got an empty sequence ()."
        )
    for u in units:
        if isinstance(u, bool) or not isinstance(u, int) or u <= 0:
            raise ValueError(
                f"hidden_units must be positive integers, got {u!r} in {hidden_units!r}."
            )
    return units


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class MLPPotential(keras.layers.Layer):
    """A scalar multilayer perceptron F: R^n -> R.

        a_0 = z                                     z: (batch, n)
        a_l = activation(a_{l-1} W_l + b_l)         W_l: (u_{l-1}, u_l), l = 1..L
        F(z) = a_L w_out + b_out                    w_out: (u_L, 1), F: (batch, 1)

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
        self.hidden_units = validate_hidden_units(hidden_units)
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
