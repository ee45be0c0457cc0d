"""Every use of private Keras API in the package, in one place.

Checked against Keras 3.15 (3.15.1) on the TensorFlow backend; `pyproject.toml` caps Keras
below 3.16 for this reason. When Keras changes one of these, only this module changes.
"""

import keras
from keras.src import backend as _backend
from keras.src.backend import rnn as _rnn


def rnn(step, sequences, initial_states, **options):
    """Keras' time loop: the function behind `keras.layers.RNN.inner_loop` (masking,
    `go_backwards`, `unroll`, `zero_output_for_mask`), which Keras does not export. Returns
    `(last_output, outputs, final_states)`; see `keras.src.backend.tensorflow.rnn.rnn`."""
    return _rnn(step, sequences, initial_states, **options)


def flatten_layers(layer: keras.layers.Layer, include_self: bool = True) -> list:
    """`layer` (if `include_self`) and every layer nested in it, at any depth, including the
    sub-layers that custom layers hold as attributes (`Model.layers` lists only the top
    level). Keras' `Layer._flatten_layers`."""
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def keras_mask(tensor):
    """The mask Keras attached to a layer's output `tensor` (`_keras_mask`), or None."""
    return _backend.get_keras_mask(tensor)


def autocast_scope(dtype: str):
    """A context in which Keras variables read as `dtype` (Keras' `AutocastScope`, which
    `Layer.__call__` enters under a mixed policy). A cell run by its recurrent layer's loop,
    not through its own `__call__`, needs it to read its variables in its own dtype."""
    return _backend.AutocastScope(dtype)
