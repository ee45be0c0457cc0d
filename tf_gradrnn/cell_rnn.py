"""What the package's recurrent layers share: `keras.layers.RNN` over a cell that the layer builds
from its own arguments, and saves as those arguments rather than as a nested cell config."""

import keras


class CellRNN(keras.layers.RNN):
    """Base of `GradientRNN` and `HamiltonianRNN` (not used directly).

    Subclasses build their cell in `__init__` and name, in `CELL_ARGUMENTS`, the cell's
    constructor arguments that the layer takes directly, and in `NETWORK_ARGUMENTS` those that
    hold a user-supplied Keras network (serialized with the layer, deserialized in
    `from_config`). `build` requires `(batch, time, features)` with a known feature size and
    then fixes the feature size in the input spec.
    """

    CELL_ARGUMENTS: tuple[str, ...] = ()
    NETWORK_ARGUMENTS: tuple[str, ...] = ()

    def build(self, sequences_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        if len(sequences_shape) != 3 or sequences_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, time, features) with a "
                f"known feature size; got shape {sequences_shape}."
            )
        super().build(sequences_shape, initial_state_shape)
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: sequences_shape[-1]})

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        return {**config, **{key: cell_config[key] for key in self.CELL_ARGUMENTS}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.NETWORK_ARGUMENTS:
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
