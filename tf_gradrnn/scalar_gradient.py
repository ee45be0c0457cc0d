"""`ScalarGradient`: a scalar network's value and its per-sample input gradient, as a layer."""

import numbers
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# value_and_gradient and check_per_sample are also imported from here (__init__, the cells).
from tf_gradrnn.per_sample_gradient import (
    check_differentiable,
    check_per_sample,
    value_and_gradient,
)


def validate_wrt(wrt) -> tuple[int, ...] | None:
    """Returns `wrt` as a tuple of ints (None: every column), or raises ValueError."""
    if wrt is None:
        return None
    if isinstance(wrt, np.ndarray):
        wrt = wrt.tolist()  # a 0-d array gives an int, a 1-d one a list
    if isinstance(wrt, numbers.Integral) and not isinstance(wrt, bool):
        wrt = (wrt,)
    if not isinstance(wrt, (list, tuple, range)) or len(wrt) == 0:
        raise ValueError(f"wrt must be None or a non-empty list of column indices, got {wrt!r}.")
    for c in wrt:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            raise ValueError(f"wrt must hold integer column indices, got {c!r} in {wrt!r}.")
    return tuple(int(c) for c in wrt)


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class ScalarGradient(keras.layers.Layer):
    """A scalar network's value and its per-sample gradient with respect to chosen inputs.

        f = F(z)                   z: (..., n), f: (..., 1)
        g = dF/dz[wrt]             g: (..., k), k = len(wrt) (k = n when wrt is None)

    `F` is `scalar_network`, applied to each row of `z` independently (leading axes are
    flattened into one batch axis, then restored). The gradient is computed in the forward
    pass by `value_and_gradient`; with `second_order=True` (the default) training
    differentiates through it, so a loss on `g` trains the weights of `F` (second order:
    `d2F/dz dtheta`). With `second_order=False`, `g` is a constant to enclosing tapes: a loss
    on `g` then trains nothing, a loss on `f` trains as usual (see `value_and_gradient`).

    Typical uses: an energy model with forces `-g` (`wrt=None`), a Hamiltonian network with
    `dq/dt = dH/dp`, `dp/dt = -dH/dq`, or a potential with extra inputs (a control, a
    condition) excluded from the gradient by listing only the coordinates in `wrt`.

    `F` must treat samples independently; BatchNormalization is refused (see
    `value_and_gradient` for why), and its activations must be twice differentiable for
    training through `g` (`tanh`, `softplus`, `gelu`; not `relu`).

    Args:
        scalar_network: Keras layer or model mapping `(batch, n)` to `(batch, 1)` or
            `(batch,)`. It is serialized with this layer. It computes in its own compute
            dtype, as a layer inside Keras' `TimeDistributed` does: `z` is cast to it, and
            `f`, `g` back to this layer's compute dtype. So a float32 network inside a
            `mixed_float16` model takes its gradient in float32 and rounds `g` once.
        wrt: `None` (every input column) or a sequence of distinct column indices of `z`
            (negative indices count from the end); `g` follows their order.
        second_order: whether enclosing tapes differentiate through `g`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(..., n)` floating-point tensor, at least 2-D.
        training: passed to `scalar_network`.

    Returns:
        `(f, g)` with `f: (..., 1)` and `g: (..., k)`.

    Example:

    ```python
    energy = ScalarGradient(MLPPotential((32, 32)))
    e, grad = energy(np.zeros((8, 2), "float32"))  # (8, 1), (8, 2); forces = -grad
    ```
    """

    def __init__(
        self,
        scalar_network: keras.layers.Layer,
        wrt: Sequence[int] | None = None,
        second_order: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(scalar_network, keras.layers.Layer):
            raise TypeError(
                "scalar_network must be a Keras layer or model, got "
                f"{type(scalar_network).__name__}."
            )
        check_per_sample(scalar_network, f"scalar_network '{scalar_network.name}'", self._owner)
        self.scalar_network = scalar_network
        self.wrt = validate_wrt(wrt)
        self.second_order = bool(second_order)
        self.features = None
        self.columns = None

    @property
    def _owner(self) -> str:
        """How error messages name this layer."""
        return f"{type(self).__name__} '{self.name}'"

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "ScalarGradient expects inputs of shape (batch, features) (or (..., features)) "
                f"with a known feature size; got shape {input_shape}."
            )
        n = input_shape[-1]
        columns = tuple(range(n)) if self.wrt is None else self.wrt
        for c in columns:
            if not -n <= c < n:
                raise ValueError(
                    f"wrt column {c} is out of range for inputs with {n} features (shape "
                    f"{input_shape}); valid indices are {-n}..{n - 1}."
                )
        columns = tuple(c % n for c in columns)
        if len(set(columns)) != len(columns):
            raise ValueError(
                f"wrt must not name a column twice, got {list(self.wrt)} for {n} features."
            )
        self.features, self.columns = n, columns
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n})
        if not self.scalar_network.built:
            self.scalar_network.build((None, n))

    def call(self, inputs, training=None):
        check_differentiable(inputs, "inputs", self._owner)
        n, columns = self.features, self.columns
        # Leading axes become one batch axis: F sees (batch, n) rows, as it was built for.
        z = inputs if inputs.shape.rank == 2 else tf.reshape(inputs, [-1, n])
        z = tf.cast(z, self.scalar_network.compute_dtype)  # g is taken in F's dtype
        if columns == tuple(range(n)):
            w, rebuild = z, None
        else:
            # F sees the columns in their original order: [w, rest] is gathered back into z.
            rest = tuple(c for c in range(n) if c not in columns)
            order = columns + rest
            inverse = [order.index(c) for c in range(n)]
            w = tf.gather(z, columns, axis=-1)
            others = tf.gather(z, rest, axis=-1)

            def rebuild(selected):
                full = tf.concat([selected, others], axis=-1)
                return full if order == tuple(range(n)) else tf.gather(full, inverse, axis=-1)

        def scalar_fn(selected):
            full = selected if rebuild is None else rebuild(selected)
            return self.scalar_network(full, training=training)

        f, g = value_and_gradient(
            scalar_fn,
            w,
            name=self.scalar_network.name,
            wrt_name="wrt columns",
            second_order=self.second_order,
            owner=self._owner,
        )
        f, g = tf.cast(f[:, None], self.compute_dtype), tf.cast(g, self.compute_dtype)
        if inputs.shape.rank > 2:
            leading = tf.shape(inputs)[:-1]
            f = tf.reshape(f, tf.concat([leading, [1]], axis=0))
            g = tf.reshape(g, tf.concat([leading, [len(columns)]], axis=0))
            f.set_shape(inputs.shape[:-1] + [1])
            g.set_shape(inputs.shape[:-1] + [len(columns)])
        return f, g

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        k = input_shape[-1] if self.wrt is None else len(self.wrt)
        return input_shape[:-1] + (1,), input_shape[:-1] + (k,)

    def get_config(self):
        return {
            **super().get_config(),
            "scalar_network": keras.saving.serialize_keras_object(self.scalar_network),
            "wrt": None if self.wrt is None else list(self.wrt),
            "second_order": self.second_order,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["scalar_network"] = keras.saving.deserialize_keras_object(config["scalar_network"])
        return cls(**config)
