"""What the package's recurrent cells share: one scalar network, given or built in and saved with
the cell, one step function, and the checks of a cell called on its own."""

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn.mlp_potential import MLPPotential
from tf_gradrnn.scalar_gradient import check_per_sample


class ScalarNetworkCell(keras.layers.Layer):
    """Base of `GradientRNNCell` and `HamiltonianCell` (not used directly).

    A subclass names the constructor argument that takes its scalar network in
    `NETWORK_ARGUMENT` (None: the built-in `MLPPotential`), its states in `STATE_NAMES`, sets
    `state_size` and `output_size` (the Keras cell contract), and implements

        step_function(training=None) -> step(x: (batch, features), states) -> (y, new_states)

    the cell's one step. `call` checks its arguments and runs it; the recurrent layers check
    their inputs once per call and run it in their time loop, without per-step checks; export
    runs it too. A step function reads what it needs from the cell when it is made, so a loop
    makes it once.

    A user-given network is saved in the config (with `keras.saving.serialize_keras_object`)
    and restored by `from_config`, which passes Keras' `custom_objects` on; the built-in one
    is saved as `None` and rebuilt from the other arguments.
    """

    NETWORK_ARGUMENT: str
    STATE_NAMES: tuple[str, ...]
    DEFAULT_NAME: str  # the name a recurrent layer gives its cell

    def __init__(self, **kwargs):
        # A mixed policy (float32 variables, half-precision compute) makes the cell compute
        # in float32: its state is fed back at every step, where half-precision round-off
        # compounds. Keras' RNN casts a float32 cell's outputs to its own compute dtype.
        policy = keras.dtype_policies.get(kwargs.get("dtype"))
        if validation.is_mixed_half_precision(policy):
            kwargs["dtype"] = policy.variable_dtype
        super().__init__(**kwargs)

    def _scalar_network(self, network, hidden_units, activation) -> keras.layers.Layer:
        """`network` after checks, or the built-in `MLPPotential(hidden_units, activation)`."""
        name = self.NETWORK_ARGUMENT
        self._network_given = network is not None
        if network is None:
            return MLPPotential(hidden_units, activation, dtype=self.dtype_policy, name=name)
        validation.network(network, name)
        check_per_sample(network, name)
        return network

    @property
    def state_sizes(self) -> list[int]:
        """`state_size` as a list, one int per state."""
        return [self.state_size] if isinstance(self.state_size, int) else list(self.state_size)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, features) with a known "
                f"feature size; got shape {input_shape}. A cell takes one time step; its "
                "recurrent layer takes (batch, time, features)."
            )
        self.features = input_shape[-1]

    def call(self, inputs, states, training=None):
        return self.step_function(training=training)(inputs, self._checked_states(inputs, states))

    def step_function(self, training=None):
        raise NotImplementedError

    def _checked_states(self, inputs, states) -> list:
        """`states` as a list of tensors in the compute dtype, after checking `inputs` and
        `states` against what the cell was built for."""
        name = type(self).__name__
        validation.float_tensor(inputs, name)
        if inputs.shape.rank != 2 or inputs.shape[-1] != self.features:
            raise ValueError(
                f"{name} was built for {self.features} input features, got inputs of shape "
                f"{tuple(inputs.shape)}."
            )
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        sizes = self.state_sizes
        if len(states) != len(sizes):
            raise ValueError(
                f"{name} expects states [{', '.join(self.STATE_NAMES)}], {len(sizes)} tensor(s) "
                f"of shape (batch, size) with sizes {sizes}; got {len(states)}."
            )
        for state_name, state, size in zip(self.STATE_NAMES, states, sizes, strict=True):
            shape = tuple(state.shape)
            if len(shape) != 2 or shape[-1] != size:
                raise ValueError(
                    f"{name} expects the state {state_name} of shape (batch, {size}), got {shape}."
                )
            if None not in (shape[0], inputs.shape[0]) and shape[0] != inputs.shape[0]:
                # The step would broadcast a batch-1 state over the batch, silently.
                raise ValueError(
                    f"{name} state {state_name} has batch size {shape[0]} but the inputs have "
                    f"batch size {inputs.shape[0]}; give one state per sample."
                )
        # A stateful layer hands its state over as Keras variables; users may pass NumPy.
        return [tf.cast(state, self.compute_dtype) for state in states]

    def get_initial_state(self, batch_size=None):
        return [
            keras.ops.zeros((batch_size, size), dtype=self.compute_dtype)
            for size in self.state_sizes
        ]

    def get_config(self):
        network = getattr(self, self.NETWORK_ARGUMENT)
        saved = keras.saving.serialize_keras_object(network) if self._network_given else None
        return {**super().get_config(), self.NETWORK_ARGUMENT: saved}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**restore_network(config, cls.NETWORK_ARGUMENT, custom_objects))


def restore_network(config: dict, key: str, custom_objects: dict | None = None) -> dict:
    """A copy of `config` with the network saved under `key` (if any) deserialized."""
    config = dict(config)
    if config.get(key) is not None:
        config[key] = keras.saving.deserialize_keras_object(
            config[key], custom_objects=custom_objects
        )
    return config
