"""The gradient-state RNN layer: `GradientRNNCell` run over a sequence by `keras.layers.RNN`."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_gradrnn import validation
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
    the inner gradient of every step (second order); see `GradientRNNCell`. Every cell
    argument is also a read-only attribute (`layer.units`, `layer.potential`, ...), and
    `layer.run_with_states(x)` returns every output and every state `h_t` (see `CellRNN`).

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
            Under a mixed `dtype` (`"mixed_float16"`, `"mixed_bfloat16"`) the variables and
            the cell's computation are float32 and the outputs come in the compute dtype, as
            for Keras' own RNN layers.

    Call arguments:
        sequences: `(batch, time, features)` floating-point tensor.
        initial_state: optional `(batch, units)` tensor (or a one-element list of it).
        mask: optional `(batch, time)` boolean tensor; by default the Keras mask of
            `sequences` (from `keras.layers.Masking`, say), also with `initial_state=`. A
            masked step keeps the previous state (`initial_state` before the first real
            step) and outputs the last real step's `y`, zeros before the first real step
            (Keras' convention; with `zero_output_for_mask=True`, which `Bidirectional` sets
            for `return_sequences`, every masked step outputs zeros).
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

    CELL_CLASS = GradientRNNCell
    CELL_ARGUMENTS = (
        "units",
        "hidden_units",
        "activation",
        "potential",
        "state_bound",
        "second_order",
        "state_gradient",
    )

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
        if checkpoint_every is not None:
            checkpoint_every = validation.positive_int(checkpoint_every, "checkpoint_every")
        super().__init__(
            {
                "units": units,
                "hidden_units": hidden_units,
                "activation": activation,
                "potential": potential,
                "state_bound": state_bound,
                "second_order": second_order,
                "state_gradient": state_gradient,
            },
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.checkpoint_every = checkpoint_every

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.checkpoint_every is not None:
            return self._checkpointed_loop(sequences, initial_state, mask, training)
        return super().inner_loop(sequences, initial_state, mask, training)

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
