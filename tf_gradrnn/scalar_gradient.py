"""Per-sample value and input gradient of a scalar network, differentiable again.

This is the one place where the package opens an inner `tf.GradientTape`: the function
`value_and_gradient` and the layer `ScalarGradient` built on it.
"""

import numbers
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tf_gradrnn._keras_internals import flatten_layers

# Layers whose output for one sample depends on other samples of the batch. The batch-sum
# trick behind the per-sample gradient (see `value_and_gradient`) is wrong for them.
_SAMPLE_MIXING_LAYERS = (keras.layers.BatchNormalization,)


def per_sample_scalar(f: tf.Tensor, name: str = "potential") -> tf.Tensor:
    """Returns `f` as shape `(batch,)`, accepting `(batch,)` or `(batch, 1)`.

    Raises:
        ValueError: if `f` is not one floating-point scalar per sample.
    """
    if not f.dtype.is_floating:
        raise ValueError(f"The {name} must return floating-point values, got dtype {f.dtype.name}.")
    rank = f.shape.rank
    if rank == 2 and f.shape[-1] == 1:
        return tf.squeeze(f, axis=-1)
    if rank == 1:
        return f
    raise ValueError(
        f"The {name} must return one scalar per sample, shape (batch, 1) or (batch,); "
        f"got output shape {tuple(f.shape)}."
    )


def check_per_sample(network: keras.layers.Layer, name: str = "network") -> None:
    """Raises ValueError if `network` holds a layer known to mix the samples of a batch."""
    for layer in flatten_layers(network):
        if isinstance(layer, _SAMPLE_MIXING_LAYERS):
            raise ValueError(
                f"The {name} contains {type(layer).__name__} layer '{layer.name}', which mixes "
                "samples of a batch in training mode; its per-sample input gradient would then "
                "be wrong. Use LayerNormalization or no normalization instead."
            )


def value_and_gradient(
    scalar_fn: Callable[[tf.Tensor], tf.Tensor],
    wrt: tf.Tensor,
    name: str = "potential",
    wrt_name: str = "input",
    second_order: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Evaluates `f = F(wrt)` and `g = dF/dwrt`, one gradient per sample.

        f_i = F(wrt_i)                 f: (batch,)
        g_i = dF/dwrt (wrt_i)          g: same shape as wrt, (batch, ...)

    The gradient is taken of `sum_i f_i`. Since `d(sum_j f_j)/dwrt_i = df_i/dwrt_i + sum_{j!=i}
    df_j/dwrt_i` and `f_j` does not depend on `wrt_i` for `j != i`, this is exactly the
    per-sample gradient, in one backward pass instead of `batch` of them. It stops being true
    when `F` mixes samples (BatchNormalization in training mode, attention over the batch):
    the result is then the gradient of the batch sum, not of each sample's value.

    The inner tape watches only `wrt` (no variables) and is not persistent. Its gradient is
    computed outside its own context, so an enclosing tape records the backward pass too.

    With `second_order=True`, differentiating `g` again (with respect to `wrt`, to anything
    `wrt` was computed from, or to the weights theta of `F`) gives the exact second-order terms
    `d2F/dwrt2` and `d2F/dwrt dtheta`.

    With `second_order=False`, `g` is returned through `tf.stop_gradient`: an enclosing tape
    treats it as a constant equal to its value. For a loss `L(f, g, ...)` the gradient becomes

        dL/dtheta = dL/df * df/dtheta           (the term dL/dg * dg/dtheta is dropped)
        dL/dwrt   = dL/df * df/dwrt             (the term dL/dg * d2F/dwrt2 is dropped)

    i.e. exactly the gradient of the same loss with `g` replaced by a precomputed constant.
    `f` is unaffected. A loss that reaches the weights only through `g` (a force loss, the
    time derivative of a Hamiltonian network) then gets no gradient at all (`None`), and a
    recurrence `h_t = g(h_{t-1})` is cut at every step. It saves the second backward pass,
    never changes the forward values.

    Args:
        scalar_fn: maps `wrt` to `(batch,)` or `(batch, 1)` values.
        wrt: `(batch, ...)` floating-point tensor.
        name: what `scalar_fn` is called in error messages.
        wrt_name: what `wrt` is called in error messages.
        second_order: whether enclosing tapes differentiate through `g` (see above).

    Returns:
        `(f, g)` with `f: (batch,)` and `g` shaped like `wrt`.

    Raises:
        ValueError: if `scalar_fn` does not return one scalar per sample, or its value does
            not depend on `wrt` (the gradient would be undefined, not zero).
    """
    # A stateful RNN hands its state over as a Keras variable, which a tape cannot watch.
    wrt = tf.convert_to_tensor(wrt)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(wrt)
        f = per_sample_scalar(scalar_fn(wrt), name=name)
        total = tf.reduce_sum(f)
    g = tape.gradient(total, wrt)
    if g is None:
        raise ValueError(
            f"The {name}'s output does not depend on its {wrt_name}, so d{name}/d{wrt_name} "
            f"is undefined. Make the {name} use every input column."
        )
    if isinstance(g, tf.IndexedSlices):
        g = tf.convert_to_tensor(g)
    if not second_order:
        g = tf.stop_gradient(g)
    return f, g


def validate_wrt(wrt) -> tuple[int, ...] | None:
    """Returns `wrt` as a tuple of ints (None: every column), or raises ValueError."""
    if wrt is None:
        return None
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
            `(batch,)`. It is serialized with this layer. Its compute dtype must equal this
            layer's.
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
        check_per_sample(scalar_network, f"scalar_network '{scalar_network.name}'")
        self.scalar_network = scalar_network
        self.wrt = validate_wrt(wrt)
        self.second_order = bool(second_order)
        self.features = None
        self.columns = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "ScalarGradient expects inputs of shape (batch, features) (or (..., features)) "
                f"with a known feature size; got shape {input_shape}."
            )
        if self.scalar_network.compute_dtype != self.compute_dtype:
            raise ValueError(
                f"The scalar_network computes in {self.scalar_network.compute_dtype} but the "
                f"ScalarGradient layer in {self.compute_dtype}; give both the same dtype."
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
        dtype = tf.as_dtype(inputs.dtype)
        if not dtype.is_floating:
            raise TypeError(
                f"ScalarGradient inputs must be floating point (the layer differentiates with "
                f"respect to them), got dtype {dtype.name}."
            )
        n, columns = self.features, self.columns
        # Leading axes become one batch axis: F sees (batch, n) rows, as it was built for.
        z = inputs if inputs.shape.rank == 2 else tf.reshape(inputs, [-1, n])
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
        )
        f = f[:, None]
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
