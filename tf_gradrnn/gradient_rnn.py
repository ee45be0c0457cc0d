"""The gradient-state RNN layer: `GradientRNNCell` run over a sequence by `keras.layers.RNN`."""

from collections.abc import Sequence

import keras

# The time loop of keras.layers.RNN (masking, go_backwards, unroll), which Keras does not
# export publicly; RNN.inner_loop calls the same function.
from keras.src.backend import rnn as keras_rnn

from tf_gradrnn.gradient_rnn_cell import GradientRNNCell, check_float_inputs

# The cell's constructor arguments, which GradientRNN takes directly and saves as its own.
_CELL_ARGUMENTS = (
    "units",
    "hidden_units",
    "activation",
    "potential",
    "state_bound",
    "second_order",
    "state_gradient",
)


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class GradientRNN(keras.layers.RNN):
    """A recurrent layer whose state is the gradient of a learned scalar network F.

        y_t = F(x_t, h_{t-1})            x: (batch, time, features)
        h_t = dF/dh (x_t, h_{t-1})       h_0 = 0 or `initial_state`, (batch, units)

    This is `keras.layers.RNN(GradientRNNCell(...))` with the cell's arguments taken directly,
    so masking, `initial_state=`, `go_backwards`, `stateful`, `unroll` and
    `keras.layers.Bidirectional` work as for any Keras RNN. Training differentiates through
    the inner gradient of every step (second order); see `GradientRNNCell`.

    With the closed-form state gradient (the default for the built-in potential), the input
    part of the first layer, `x_t W_1[:features] + b_1`, is computed for all steps in one
    matmul before the time loop, as cuDNN does for LSTMs; only the h-dependent part stays in
    the loop.

    Args:
        units: size of the state h.
        hidden_units: widths of the default potential's hidden layers.
        activation: activation of the default potential (twice differentiable, e.g. `tanh`).
        potential: optional Keras layer or model, `(batch, features + units) -> (batch, 1)`.
        state_bound: optional positive float; bounds the state smoothly, `h = b tanh(dF/dh / b)`.
        second_order: `False` treats every state as a constant in training (cheaper, inexact);
            see `GradientRNNCell`.
        state_gradient: `"auto"`, `"closed_form"` or `"tape"`; see `GradientRNNCell`.
        return_sequences: return every `y_t`, `(batch, time, 1)`, instead of the last,
            `(batch, 1)`.
        return_state: also return the final state `h_T`, `(batch, units)`.
        go_backwards: process the sequence in reverse.
        stateful: carry the final state of each batch into the next.
        unroll: unroll the time loop (short sequences only).
        **kwargs: base `keras.layers.RNN` / `Layer` arguments (`name`, `dtype`,
            `zero_output_for_mask`, ...).

    Call arguments:
        sequences: `(batch, time, features)` floating-point tensor.
        initial_state: optional `(batch, units)` tensor (or a one-element list of it).
        mask: optional `(batch, time)` boolean tensor; masked steps keep the previous state.
        training: passed to the potential.

    Returns:
        `y` as above, followed by `h_T` when `return_state=True`.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((None, 3)),                                 # (batch, time, 3)
        GradientRNN(8, hidden_units=(32, 32), return_sequences=True),  # (batch, time, 1)
    ])
    ```
    """

    def __init__(
        self,
        units: int,
        hidden_units: Sequence[int] = (64, 64),
        activation="tanh",
        potential: keras.layers.Layer | None = None,
        state_bound: float | None = None,
        second_order: bool = True,
        state_gradient: str = "auto",
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        **kwargs,
    ):
        kwargs.pop("cell", None)
        cell = GradientRNNCell(
            units,
            hidden_units=hidden_units,
            activation=activation,
            potential=potential,
            state_bound=state_bound,
            second_order=second_order,
            state_gradient=state_gradient,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gradient_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def hidden_units(self) -> tuple[int, ...]:
        return self.cell.hidden_units

    @property
    def activation(self):
        return self.cell.activation

    @property
    def potential(self) -> keras.layers.Layer:
        return self.cell.potential

    def build(self, sequences_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                "GradientRNN expects inputs of shape (batch, time, features) with a known "
                f"feature size; got shape {sequences_shape}."
            )
        super().build(sequences_shape, initial_state_shape)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: sequences_shape[-1]})

    def call(self, sequences, initial_state=None, mask=None, training=False):
        check_float_inputs(sequences)
        if initial_state is not None:
            state = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
            check_float_inputs(state, "initial_state")
            if state.shape.rank != 2 or state.shape[-1] != self.units:
                raise ValueError(
                    f"GradientRNN initial_state must have shape (batch, {self.units}), got "
                    f"{tuple(state.shape)}."
                )
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self.cell.uses_closed_form:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        closed = self.cell.potential.closed_form_gradient(self.cell.features)

        def step(projected, states):
            y, gradient = closed.value_and_gradient(projected, states[0])
            return y[:, None], [self.cell.state_from_gradient(gradient)]

        return keras_rnn(
            step,
            closed.project(sequences),
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        return {**config, **{key: cell_config[key] for key in _CELL_ARGUMENTS}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("potential") is not None:
            config["potential"] = keras.saving.deserialize_keras_object(config["potential"])
        return cls(**config)
