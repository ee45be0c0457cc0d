"""What the package's recurrent layers share: `keras.layers.RNN` over a cell that the layer builds
from its own arguments and saves as those arguments, the checks of its inputs and initial state,
sequences of no steps, and `run_with_states`."""

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn._keras_internals import autocast_scope, keras_mask, rnn
from tf_gradrnn.network_cell import ScalarNetworkCell, restore_network


class CellRNN(keras.layers.RNN):
    """Base of `GradientRNN` and `HamiltonianRNN` (not used directly).

    A subclass names its cell class in `CELL_CLASS` (a `ScalarNetworkCell`) and, in
    `CELL_ARGUMENTS`, the cell's constructor arguments that the layer takes directly: the layer
    passes them to the cell with its own `dtype` and `trainable`, saves them in its config
    instead of a nested cell config, and exposes each as a read-only attribute
    (`layer.units is layer.cell.units`).

    Every call checks, once and before the time loop: floating-point `(batch, time, features)`
    inputs (`features` fixed at build), and an initial state of one `(batch, size)` tensor per
    entry of `cell.state_size`, floating point and with the inputs' batch size (asserted at
    run time when a batch size is unknown while tracing), and a `(batch, time)` mask, given or
    else the inputs' Keras mask, whatever else the call passes. A sequence of 0 steps gives
    outputs `(batch, 0, output_size)` and the initial state as the final state; it has no last
    output, so with `return_sequences=False` it is an error.
    """

    CELL_CLASS: type[ScalarNetworkCell]
    CELL_ARGUMENTS: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in cls.CELL_ARGUMENTS:
            if name not in cls.__dict__:
                setattr(cls, name, property(_cell_attribute(name)))

    def __init__(self, cell_arguments: dict, **kwargs):
        kwargs.pop("cell", None)  # rebuilt from cell_arguments
        cell = self.CELL_CLASS(
            **cell_arguments,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self.CELL_CLASS.DEFAULT_NAME,
        )
        super().__init__(cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, sequences_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, time, features) with a "
                f"known feature size; got shape {sequences_shape}."
            )
        super().build(sequences_shape, initial_state_shape)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: sequences_shape[-1]})

    def call(self, sequences, initial_state=None, mask=None, training=False):
        validation.float_tensor(sequences, type(self).__name__)
        mask = self._checked_mask(sequences, mask)
        # Under a mixed policy the cell computes in float32 (see ScalarNetworkCell), and
        # Keras' RNN casts the outputs back to this layer's compute dtype.
        sequences = tf.cast(sequences, self.cell.compute_dtype)
        if initial_state is not None:
            initial_state = self._checked_initial_state(sequences, initial_state)
        if sequences.shape[1] == 0:
            if not self.return_sequences:
                raise self._no_last_output()
            states = [
                tf.cast(s, self.compute_dtype)
                for s in self._initial_state(sequences, initial_state)
            ]
            outputs = self._no_outputs(sequences)
            return (outputs, *states) if self.return_state else outputs
        with autocast_scope(self.cell.compute_dtype):
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        return self._loop(sequences, initial_state, mask, training, self.return_sequences)

    def run_with_states(self, sequences, initial_state=None, mask=None, training=False):
        """Runs the layer over `sequences` and returns every output and every state.

            sequences: (batch, time, features) -> outputs: (batch, time, output_size),
                                                  states: [(batch, time, size) per cell state]

        `outputs[:, t]` is what `return_sequences=True` returns at step t, whatever this
        layer's `return_sequences`; `states[i][:, t]` is the cell's i-th state after step t
        (`[h]` for `GradientRNN`, `[q, p]` for `HamiltonianRNN`). The step is the layer's own
        (`cell.step_function`), so the numbers are those of calling the layer.

        Masked steps keep the previous state (the initial state before the first unmasked
        step), and their outputs follow `zero_output_for_mask`, as when calling the layer.
        With `go_backwards=True` the sequence is processed from its last step, and the results
        come in processing order (index 0 is after `x_T`), as Keras returns them. `unroll` is
        honoured when the number of steps is known. The initial state defaults to zeros, or to
        a stateful layer's current state, which this method reads but does not update.

        It runs eagerly, in a `tf.function` and under `jit_compile=True`, also with unknown
        batch and time sizes (0 steps give empty results).

        Args:
            sequences: `(batch, time, features)` floating-point tensor or array.
            initial_state: optional list of one `(batch, size)` tensor per cell state (a bare
                tensor for a single state).
            mask: optional `(batch, time)` boolean tensor.
            training: passed to the cell's network.

        Returns:
            `(outputs, states)` as above, in the layer's compute dtype.
        """
        mask = keras_mask(sequences) if mask is None else mask
        sequences = tf.convert_to_tensor(sequences)
        validation.float_tensor(sequences, type(self).__name__)
        sequences = tf.cast(sequences, self.cell.compute_dtype)
        if not self.built:
            self.build(sequences.shape)
        features = self.input_spec.axes[-1]
        if sequences.shape.rank != 3 or sequences.shape[-1] != features:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, time, {features}), got "
                f"{tuple(sequences.shape)}."
            )
        if initial_state is not None:
            initial_state = self._checked_initial_state(sequences, initial_state)
        initial_state = self._initial_state(sequences, initial_state)
        mask = self._checked_mask(sequences, mask)

        def step_and_states(x, states):
            # The states ride along as outputs: Keras' loop keeps every output.
            y, new_states = step(x, states)
            return tf.concat([y, *new_states], axis=-1), new_states

        def loop(sequences, initial_state, mask, training, go_backwards, return_all):
            return rnn(
                step_and_states,
                sequences,
                initial_state,
                go_backwards=go_backwards,
                mask=mask,
                unroll=self.unroll and sequences.shape[1] is not None,
                input_length=sequences.shape[1],
                zero_output_for_mask=False,
                return_all_outputs=return_all,
            )

        sizes = [self.cell.output_size, *self.state_size]
        if sequences.shape[1] == 0:
            outputs = tf.zeros([tf.shape(sequences)[0], 0, sum(sizes)], sequences.dtype)
        else:
            with autocast_scope(self.cell.compute_dtype):
                step = self.cell.step_function(training=training)
                _, outputs, _ = self._loop(sequences, initial_state, mask, training, True, loop)
        outputs, *states = tf.split(outputs, sizes, axis=-1)
        if mask is not None:
            if self.go_backwards:
                mask = tf.reverse(mask, axis=[1])
            if self.zero_output_for_mask:
                outputs = tf.where(mask[..., None], outputs, tf.zeros_like(outputs))
            # Before the first unmasked step, Keras' loop gives zeros, not the initial state.
            started = (tf.cumsum(tf.cast(mask, tf.int32), axis=1) > 0)[..., None]
            states = [
                tf.where(started, s, s0[:, None])
                for s, s0 in zip(states, initial_state, strict=True)
            ]
        return tf.cast(outputs, self.compute_dtype), [
            tf.cast(s, self.compute_dtype) for s in states
        ]

    def _loop(self, sequences, initial_state, mask, training, return_all, loop=None):
        """`loop` (by default `_time_loop`) over `sequences`; when the number of steps is only
        known at run time, it may be 0, and then there are no outputs and the final state is
        the initial state."""
        loop = loop or self._time_loop
        if sequences.shape[1] is not None:
            last, outputs, states = loop(
                sequences, initial_state, mask, training, self.go_backwards, return_all
            )
            return last, outputs, list(states)
        steps = tf.shape(sequences)[1]
        checks = []
        if not return_all:
            message = f"{type(self).__name__} needs at least one time step"
            checks.append(tf.debugging.assert_positive(steps, message=message))
        # Keras' loop reads the first step before looping, and XLA compiles both branches of
        # a tf.cond: so 0 steps run one step of zeros, whose results are then dropped.
        padding = [[0, 0], [0, tf.maximum(1 - steps, 0)]]
        with tf.control_dependencies(checks):
            sequences = tf.pad(sequences, padding + [[0, 0]])
        if mask is not None:
            mask = tf.pad(tf.cast(mask, tf.bool), padding, constant_values=False)
        last, outputs, states = loop(
            sequences, initial_state, mask, training, self.go_backwards, return_all
        )
        if return_all:
            outputs = outputs[:, :steps]
        states = [tf.where(steps > 0, s, s0) for s, s0 in zip(states, initial_state, strict=True)]
        return last, outputs, states

    def _time_loop(
        self, sequences, initial_state, mask, training, go_backwards, return_all, **step_options
    ):
        """Keras' time loop over `cell.step_function(training, **step_options)`."""
        return rnn(
            self.cell.step_function(training=training, **step_options),
            sequences,
            list(initial_state),
            go_backwards=go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=return_all,
        )

    def _checked_mask(self, sequences, mask):
        """`mask`, or else the Keras mask of `sequences`, as a checked `(batch, time)` boolean
        tensor; None if there is neither."""
        if mask is None:
            # Keras (3.15) fills `mask` in from the inputs' mask only for a call with a single
            # tensor argument: with `initial_state=` it stays None, and a Masking layer's mask
            # would be silently dropped (keras.layers.LSTM drops it so).
            mask = keras_mask(sequences)
        if mask is None:
            return None
        return validation.sequence_mask(mask, sequences, type(self).__name__)

    def _no_outputs(self, sequences):
        """The outputs of 0 steps: zeros of shape (batch, 0, output_size)."""
        shape = [tf.shape(sequences)[0], 0, self.cell.output_size]
        return tf.zeros(shape, self.compute_dtype)

    def _no_last_output(self) -> ValueError:
        return ValueError(
            f"{type(self).__name__} got sequences of 0 time steps; with return_sequences=False "
            "there is no last output. Give at least one time step, or use "
            "return_sequences=True."
        )

    def _initial_state(self, sequences, initial_state):
        """`initial_state`, or the default: a stateful layer's state, else zeros."""
        if initial_state is not None:
            return [tf.cast(s, self.cell.compute_dtype) for s in initial_state]
        if self.stateful:
            return [tf.convert_to_tensor(s) for s in self.states]
        return self.get_initial_state(tf.shape(sequences)[0])

    def _checked_initial_state(self, sequences, initial_state) -> list:
        """`initial_state` as a list of tensors, after checking it against `cell.state_size`."""
        return validation.initial_states(
            initial_state, sequences, type(self).__name__, self.cell.STATE_NAMES, self.state_size
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        return {**config, **{key: cell_config[key] for key in self.CELL_ARGUMENTS}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**restore_network(config, cls.CELL_CLASS.NETWORK_ARGUMENT, custom_objects))


def _cell_attribute(name: str):
    def read(self):
        return getattr(self.cell, name)

    read.__name__ = name
    read.__doc__ = f"The cell's `{name}` (read-only; see the class docstring)."
    return read
