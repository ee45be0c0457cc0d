"""The gradient-state RNN cell: the next state is the gradient of a learned scalar."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn.mlp_potential import MLPPotential
from tf_gradrnn.network_cell import ScalarNetworkCell
from tf_gradrnn.scalar_gradient import value_and_gradient

STATE_GRADIENTS = ("auto", "closed_form", "tape")


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class GradientRNNCell(ScalarNetworkCell):
    """An RNN cell whose next state is the gradient of a scalar network F.

        y_t = F(x_t, h_{t-1})            x_t: (batch, features), y_t: (batch, 1)
        h_t = dF/dh (x_t, h_{t-1})       h: (batch, units)

    F is `potential`, applied to `concat([x_t, h_{t-1}], axis=-1)` of shape
    `(batch, features + units)`. By default it is `MLPPotential(hidden_units, activation)`:
    `Dense(u, activation)` for each `u` in `hidden_units`, then `Dense(1)`, with weights
    `[W_1 (features + units, u_1), b_1, ..., w_out (u_L, 1), b_out]`.

    dF/dh is computed in the forward pass by a nested, input-only `tf.GradientTape` of the
    batch sum of F, which is each sample's own gradient because F treats samples
    independently (see `tf_gradrnn.scalar_gradient.value_and_gradient`). A potential holding
    BatchNormalization is refused for that reason; other sample-mixing layers cannot be
    detected and give the gradient of the batch sum. Any enclosing tape (`model.fit`) sees
    the inner backward pass, so the loss gradient includes the second-order terms
    d(dF/dh)/dtheta through every state.

    For the built-in `MLPPotential` (activations `tanh`, `sigmoid`, `softplus`, `linear`), dF/dh
    is by default computed in closed form instead (back-propagation written out, see
    `MLPPotential.closed_form_gradient`): the same numbers, fewer and larger operations, and
    the enclosing tape differentiates it once rather than differentiating a tape.

    This implements the Keras 3 RNN cell contract (`state_size`, `output_size`,
    `call(inputs, states)`, `get_initial_state`); wrap it in `keras.layers.RNN`, or use
    `tf_gradrnn.GradientRNN`. The step itself is `step_function`, shared by `call`, the
    layer's time loop and export; `call` checks its arguments first, the layer checks its
    inputs once per call. Under a mixed policy (`mixed_float16`, `mixed_bfloat16`) the cell
    computes in float32, its variable dtype, and `keras.layers.RNN` returns its outputs in
    the policy's compute dtype; pure `float16` / `bfloat16` are refused: the state is a
    gradient fed back `T` times, where half-precision round-off compounds.

    Args:
        units: size of the state h, a positive int.
        hidden_units: widths of the default potential's hidden layers (ignored when
            `potential` is given).
        activation: activation of the default potential (ignored when `potential` is given);
            it must be twice differentiable for training, as `tanh` is.
        potential: optional Keras layer or model mapping `(batch, features + units)` to
            `(batch, 1)` or `(batch,)`. It is serialized with the cell. Its compute dtype must
            equal the cell's.
        state_bound: optional positive float `b`. The state is then `h_t = b tanh(g_t / b)`
            with `g_t = dF/dh`: equal to `g_t` for `|g_t| << b`, smooth, and never beyond `b`.
            The recurrence's Jacobian is the Hessian of F in h, so without a bound a potential
            that grows faster than quadratically in h can drive the state to overflow. It must
            be a normal number of the compute dtype (in float32, 1.2e-38 to 3.4e38).
        second_order: with `False`, each state is treated as a constant by enclosing tapes
            (`tf.stop_gradient`): the forward pass is unchanged, but the loss gradient keeps
            only the direct path through each `y_t = F(x_t, h_{t-1})` and drops everything
            that flows through a state (the terms `d(dF/dh)/dtheta` and the dependence of
            `h_{t-1}` on earlier steps and on `initial_state`). Cheaper, and not the gradient
            of the loss; the default `True` is exact.
        state_gradient: how dF/dh is computed: `"closed_form"` (MLPPotential only), `"tape"`
            (a nested `tf.GradientTape`, any potential) or `"auto"` (closed form when the
            potential supports it, else the tape).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, features)` floating-point tensor.
        states: `[h]` (or a bare `h`), `(batch, units)`.
        training: passed to the potential.

    Returns:
        `(y, [h_next])` with `y: (batch, 1)` and `h_next: (batch, units)`.

    Example:

    ```python
    cell = GradientRNNCell(units=8, hidden_units=(32, 32))
    layer = keras.layers.RNN(cell, return_sequences=True)
    y = layer(np.zeros((4, 10, 3), "float32"))  # (4, 10, 1)
    ```
    """

    NETWORK_ARGUMENT = "potential"
    STATE_NAMES = ("h",)
    DEFAULT_NAME = "gradient_rnn_cell"

    def __init__(
        self,
        units: int,
        hidden_units: Sequence[int] = (64, 64),
        activation="tanh",
        potential: keras.layers.Layer | None = None,
        state_bound: float | None = None,
        second_order: bool = True,
        state_gradient: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.refuse_half_precision(
            self,
            "its state is a gradient fed back at every step, and half-precision round-off "
            "compounds over time.",
        )
        self.units = validation.positive_int(units, "units")
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.activation = keras.activations.get(activation)
        self.potential = self._scalar_network(potential, self.hidden_units, self.activation)
        self.state_gradient = validation.one_of(state_gradient, STATE_GRADIENTS, "state_gradient")
        supported = isinstance(self.potential, MLPPotential) and (
            self.potential.has_closed_form_gradient
        )
        if state_gradient == "closed_form" and not supported:
            raise ValueError(
                "state_gradient='closed_form' needs an MLPPotential with activation tanh, "
                f"sigmoid, softplus or linear; got {type(self.potential).__name__} "
                f"'{self.potential.name}'. Use state_gradient='tape' (or 'auto')."
            )
        self.uses_closed_form = supported and state_gradient != "tape"
        self.state_bound = None
        if state_bound is not None:
            state_bound = validation.positive_finite(state_bound, "state_bound")
            self.state_bound = validation.normal_range(
                state_bound, self.compute_dtype, "state_bound"
            )
        self.second_order = bool(second_order)
        self.state_size = self.units
        self.output_size = 1
        self.features = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.features == 0:
            # A (batch, 0) x (0, units) matmul aborts the whole process in oneDNN (at fit).
            raise ValueError(
                f"{type(self).__name__} needs at least one input feature, got inputs of shape "
                f"{tuple(input_shape)}: F(x_t, h) with no x_t has no input to follow."
            )
        if self.potential.compute_dtype != self.compute_dtype:
            raise ValueError(
                f"The potential computes in {self.potential.compute_dtype} but the cell in "
                f"{self.compute_dtype}; give both the same dtype (e.g. dtype='float64')."
            )
        if not self.potential.built:
            self.potential.build((input_shape[0], self.features + self.units))

    def step_function(self, training=None, weights=None):
        """The cell's step, `step(x, [h]) -> (y: (batch, 1), [h_next])`, for `call`, the
        layer's time loop and export. With the closed form, the potential's weights are read
        here, once (or taken from `weights`, tensors in `get_weights()` order)."""
        if self.uses_closed_form:
            closed = self.potential.closed_form_gradient(self.features, weights)

            def value_and_state_gradient(x, h):
                return closed.value_and_gradient(closed.project(x), h)

        else:

            def value_and_state_gradient(x, h):
                def potential_of_state(state):
                    return self.potential(tf.concat([x, state], axis=-1), training=training)

                return value_and_gradient(potential_of_state, h, wrt_name="state h")

        def step(x, states):
            y, gradient = value_and_state_gradient(x, states[0])
            return y[:, None], [self.state_from_gradient(gradient)]

        return step

    def state_from_gradient(self, gradient):
        """The next state from `gradient = dF/dh`: bounded by `state_bound` if set, and a
        constant to enclosing tapes if `second_order` is False."""
        if not self.second_order:
            gradient = tf.stop_gradient(gradient)
        if self.state_bound is None:
            return gradient
        return self.state_bound * tf.tanh(gradient / self.state_bound)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
            "state_bound": self.state_bound,
            "second_order": self.second_order,
            "state_gradient": self.state_gradient,
        }
