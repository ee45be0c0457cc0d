"""What the package's recurrent layers share: `keras.layers.RNN` over a cell that the layer builds
from its own arguments and saves as those arguments, the checks of its inputs and initial state,
sequences of no steps, and `run_with_states`."""

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn._keras_internals import rnn
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
    run time when a batch size is unknown while tracing). A sequence of 0 steps gives outputs
    `(batch, 0, output_size)` and the initial state as the final state; it has no last output,
    so with `return_sequences=False` it is an error. The time loop, Keras' own, runs the cell's
    `step_function`, as `run_with_states` does.
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
        if initial_state is not None:
            initial_state = self._checked_initial_state(sequences, initial_state)
        if sequences.shape[1] == 0:
            if not self.return_sequences:
                raise ValueError(
                    f"{type(self).__name__} got sequences of 0 time steps; with "
                    "return_sequences=False there is no last output. Give at least one time "
                    "step, or use return_sequences=True."
                )
            shape = [tf.shape(sequences)[0], 0, self.cell.output_size]
            outputs = tf.zeros(shape, self.compute_dtype)
            states = self._initial_state(sequences, initial_state)
            return (outputs, *states) if self.return_state else outputs
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

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
        sequences = tf.convert_to_tensor(sequences)
        validation.float_tensor(sequences, type(self).__name__)
        sequences = tf.cast(sequences, self.compute_dtype)
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
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
        step = self.cell.step_function(training=training)

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
            outputs = tf.zeros([tf.shape(sequences)[0], 0, sum(sizes)], self.compute_dtype)
        else:
            _, outputs, _ = self._loop(sequences, initial_state, mask, training, True, loop)
        outputs, *states = tf.split(outputs, sizes, axis=-1)
        if mask is None:
            return outputs, states
        if self.go_backwards:
            mask = tf.reverse(mask, axis=[1])
        if self.zero_output_for_mask:
            outputs = tf.where(mask[..., None], outputs, tf.zeros_like(outputs))
        # Before the first unmasked step, Keras' loop gives zeros, not the initial state.
        started = (tf.cumsum(tf.cast(mask, tf.int32), axis=1) > 0)[..., None]
        states = [
            tf.where(started, s, s0[:, None]) for s, s0 in zip(states, initial_state, strict=True)
        ]
        return outputs, states

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

    def _initial_state(self, sequences, initial_state):
        """`initial_state`, or the default: a stateful layer's state, else zeros; in the
        compute dtype."""
        if initial_state is None:
            batch = tf.shape(sequences)[0]
            initial_state = self.states if self.stateful else self.get_initial_state(batch)
        return [keras.ops.cast(s, self.compute_dtype) for s in initial_state]

    def _checked_initial_state(self, sequences, initial_state) -> list:
        """`initial_state` as a list of tensors, after checking it against `cell.state_size`."""
        name, sizes = type(self).__name__, self.state_size
        names = self.cell.STATE_NAMES
        states = (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        )
        if len(states) != len(sizes):
            shapes = ", ".join(f"(batch, {size})" for size in sizes)
            expected = (
                f"has one state, so initial_state must be one tensor {shapes}"
                if len(sizes) == 1
                else f"has {len(sizes)} states [{', '.join(names)}], so initial_state must be "
                f"a list [{', '.join(n + '0' for n in names)}] of tensors {shapes}"
            )
            got = f"{len(states)} tensor" + ("" if len(states) == 1 else "s")
            raise ValueError(f"{name} {expected}; got {got}.")
        checked = []
        for state_name, state, size in zip(names, states, sizes, strict=True):
            what = "initial_state" if len(sizes) == 1 else f"initial_state {state_name}0"
            state = tf.convert_to_tensor(state)
            validation.float_tensor(state, name, what)
            if state.shape.rank != 2 or state.shape[-1] != size:
                raise ValueError(
                    f"{name} {what} must have shape (batch, {size}), got {tuple(state.shape)}."
                )
            batch, state_batch = sequences.shape[0], state.shape[0]
            if batch is not None and state_batch is not None:
                if batch != state_batch:
                    raise ValueError(
                        f"{name} {what} has batch size {state_batch} but the inputs have batch "
                        f"size {batch}; give one initial state per sequence."
                    )
            else:
                same = tf.debugging.assert_equal(
                    tf.shape(state)[0],
                    tf.shape(sequences)[0],
                    message=f"{name} {what} has another batch size than the inputs; give one "
                    "initial state per sequence",
                )
                with tf.control_dependencies([same]):
                    state = tf.identity(state)
            checked.append(state)
        return checked

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
