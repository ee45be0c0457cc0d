"""The gradient-state RNN layer: `GradientRNNCell` run over a sequence by `keras.layers.RNN`."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn._keras_internals import rnn as keras_rnn
from tf_gradrnn.cell_rnn import CellRNN
from tf_gradrnn.checkpointed_loop import carry_last_unmasked, checkpointed_loop
from tf_gradrnn.gradient_rnn_cell import GradientRNNCell


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class GradientRNN(CellRNN):
    """A recurrent layer whose state is the gradient of a learned scalar network F.

        y_t = F(x_t, h_{t-1})            x: (batch, time, features)
        h_t = dF/dh (x_t, h_{t-1})       h_0 = 0 or `initial_state`, (batch, units)

    This is `keras.layers.RNN(GradientRNNCell(...))` with the cell's arguments taken directly,
    so masking, `initial_state=`, `go_backwards`, `stateful`, `unroll` and
    `keras.layers.Bidirectional` work as for any Keras RNN. Training differentiates through
    the inner gradient of every step (second order); see `GradientRNNCell`.

    With the closed-form state gradient (the default for the built-in potential), the
    potential's weights are read once, before the time loop. The input part of the first
    layer, `x_t W_1[:features]`, stays inside the loop: computing it for all steps in one
    matmul before the loop, as cuDNN does for LSTMs, was measured 3-14 % slower here
    (`benchmarks/RESULTS.md`).

    Args:
        units: size of the state h.
        hidden_units: widths of the default potential's hidden layers.
        activation: activation of the default potential (twice differentiable, e.g. `tanh`).
        potential: optional Keras layer or model, `(batch, features + units) -> (batch, 1)`.
        state_bound: optional positive float; bounds the state smoothly, `h = b tanh(dF/dh / b)`.
        second_order: `False` treats every state as a constant in training (cheaper, inexact);
            see `GradientRNNCell`.
        state_gradient: `"auto"`, `"closed_form"` or `"tape"`; see `GradientRNNCell`.
        checkpoint_every: optional positive int `k`: run the time loop in chunks of `k` steps
            and recompute each chunk in the backward pass (`tf.recompute_grad`), so training
            keeps only the states between chunks instead of every step's intermediates. The
            gradients are unchanged; training costs one more forward pass. Needs a known
            number of time steps and the closed-form state gradient.
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

    CELL_ARGUMENTS = (
        "units",
        "hidden_units",
        "activation",
        "potential",
        "state_bound",
        "second_order",
        "state_gradient",
    )
    NETWORK_ARGUMENTS = ("potential",)

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
        checkpoint_every: int | None = None,
        **kwargs,
    ):
        kwargs.pop("cell", None)
        if checkpoint_every is not None:
            checkpoint_every = validation.positive_int(checkpoint_every, "checkpoint_every")
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
        self.checkpoint_every = checkpoint_every

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

    def call(self, sequences, initial_state=None, mask=None, training=False):
        validation.float_tensor(sequences, type(self).__name__)
        if initial_state is not None:
            initial_state = self._checked_initial_state(sequences, initial_state)
        if sequences.shape[1] == 0:
            return self._no_steps(sequences, initial_state)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def _checked_initial_state(self, sequences, initial_state):
        states = (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        )
        if len(states) != 1:
            raise ValueError(
                f"GradientRNN has one state, so initial_state must be one tensor (batch, "
                f"{self.units}); got {len(states)} tensors."
            )
        state = tf.convert_to_tensor(states[0])
        validation.float_tensor(state, type(self).__name__, "initial_state")
        if state.shape.rank != 2 or state.shape[-1] != self.units:
            raise ValueError(
                f"GradientRNN initial_state must have shape (batch, {self.units}), got "
                f"{tuple(state.shape)}."
            )
        batch, state_batch = sequences.shape[0], state.shape[0]
        if batch is not None and state_batch is not None:
            if batch != state_batch:
                raise ValueError(
                    f"GradientRNN initial_state has batch size {state_batch} but the inputs "
                    f"have batch size {batch}; give one initial state per sequence."
                )
            return state
        same = tf.debugging.assert_equal(
            tf.shape(state)[0],
            tf.shape(sequences)[0],
            message="GradientRNN initial_state must have the inputs' batch size",
        )
        with tf.control_dependencies([same]):
            return tf.identity(state)

    def _no_steps(self, sequences, initial_state):
        """The result for a sequence of 0 steps: no outputs, and the initial state."""
        if not self.return_sequences:
            raise ValueError(
                "GradientRNN got sequences of 0 time steps; with return_sequences=False there "
                "is no last output. Give at least one time step, or use return_sequences=True."
            )
        batch = tf.shape(sequences)[0]
        if initial_state is None:
            initial_state = self.states[0] if self.stateful else self.get_initial_state(batch)[0]
        outputs = tf.zeros([batch, 0, 1], self.compute_dtype)
        state = tf.cast(initial_state, self.compute_dtype)
        return (outputs, state) if self.return_state else outputs

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.checkpoint_every is not None:
            return self._checkpointed_loop(sequences, initial_state, mask, training)

        def loop():
            last, outputs, states = self._time_loop(
                sequences, initial_state, mask, training, self.go_backwards, self.return_sequences
            )
            return last, outputs, list(states)

        if sequences.shape[1] is not None:
            return loop()
        # Unknown length: a sequence of 0 steps would fail in Keras' loop (see `_no_steps`).
        steps = tf.shape(sequences)[1]
        if not self.return_sequences:
            with tf.control_dependencies(
                [
                    tf.debugging.assert_positive(
                        steps, message="GradientRNN needs at least one time step"
                    )
                ]
            ):
                return loop()

        def no_steps():
            batch = tf.shape(sequences)[0]
            zeros = tf.zeros([batch, 1], sequences.dtype)
            return zeros, tf.zeros([batch, 0, 1], sequences.dtype), list(initial_state)

        return tf.cond(steps > 0, loop, no_steps)

    def _time_loop(
        self, sequences, initial_state, mask, training, go_backwards, return_all, weights=None
    ):
        """Keras' RNN loop over the cell, or over the closed form with the weights read once
        (the potential's `weights`, if given, instead of its variables)."""
        if self.cell.uses_closed_form:
            closed = self.cell.potential.closed_form_gradient(self.cell.features, weights)

            def step(x, states):
                y, gradient = closed.value_and_gradient(closed.project(x), states[0])
                return y[:, None], [self.cell.state_from_gradient(gradient)]

        else:

            def step(x, states):
                return self.cell(x, states, training=training)

        inputs = sequences
        return keras_rnn(
            step,
            inputs,
            list(initial_state),
            go_backwards=go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=inputs.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=return_all,
        )

    def _checkpointed_loop(self, sequences, initial_state, mask, training):
        """The time loop in chunks of `checkpoint_every` steps, each recomputed in the backward
        pass: only the states between chunks are kept, at the cost of a second forward pass."""
        steps = sequences.shape[1]
        if steps is None:
            raise ValueError(
                "checkpoint_every needs a known number of time steps; give the Input a fixed "
                "time dimension, e.g. keras.Input((T, features))."
            )
        if not self.cell.uses_closed_form:
            # tf.recompute_grad runs its forward pass with every tape paused, the inner one too.
            raise ValueError(
                "checkpoint_every needs the closed-form state gradient (the built-in "
                "MLPPotential with tanh, sigmoid, softplus or linear); a nested-tape potential "
                "cannot run inside tf.recompute_grad."
            )
        if self.go_backwards:
            sequences = tf.reverse(sequences, axis=[1])
            mask = None if mask is None else tf.reverse(mask, axis=[1])
        potential = self.cell.potential
        variables = [
            w for layer in (*potential.hidden_layers, potential.output_layer) for w in layer.weights
        ]

        def run_chunk(x, h, chunk_mask, weights):
            chunk_mask = None if chunk_mask is None else tf.cast(chunk_mask, tf.bool)
            _, outputs, (h,) = self._time_loop(
                x, [h], chunk_mask, training, False, True, weights=weights
            )
            return h, outputs

        outputs, h = checkpointed_loop(
            run_chunk,
            sequences,
            initial_state[0],
            None if mask is None else tf.cast(mask, sequences.dtype),
            self.checkpoint_every,
            [tf.convert_to_tensor(v) for v in variables],  # read once, passed to every chunk
        )
        if mask is not None and not self.zero_output_for_mask:
            outputs = carry_last_unmasked(outputs, mask)
        return outputs[:, -1], outputs, [h]

    def get_config(self):
        return {**super().get_config(), "checkpoint_every": self.checkpoint_every}
