"""tf_gradrnn: Keras layers whose forward pass holds the gradient of a learned scalar.

    y_t = F(x_t, h_{t-1}),   h_t = dF/dh (x_t, h_{t-1})

trained through to second order with plain `model.fit`.
"""

import os as _os

if _os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    raise ImportError(
        f"tf_gradrnn needs Keras on the TensorFlow backend, but KERAS_BACKEND is "
        f"'{_os.environ['KERAS_BACKEND']}'. Set KERAS_BACKEND=tensorflow before importing keras."
    )

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"tf_gradrnn needs Keras on the TensorFlow backend, but Keras runs on "
        f"'{_keras.backend.backend()}'. Set KERAS_BACKEND=tensorflow (or \"backend\" in "
        "~/.keras/keras.json) before importing keras."
    )

from tf_gradrnn.callbacks import NonFiniteGuard  # noqa: E402
from tf_gradrnn.distributed_fit import distributed_fit  # noqa: E402
from tf_gradrnn.gradient_rnn import GradientRNN  # noqa: E402
from tf_gradrnn.gradient_rnn_cell import GradientRNNCell  # noqa: E402
from tf_gradrnn.hamiltonian_cell import HamiltonianCell  # noqa: E402
from tf_gradrnn.hamiltonian_rnn import HamiltonianRNN  # noqa: E402
from tf_gradrnn.losses import MaskedMeanSquaredError  # noqa: E402
from tf_gradrnn.mlp_potential import MLPPotential  # noqa: E402
from tf_gradrnn.scalar_gradient import ScalarGradient, value_and_gradient  # noqa: E402
from tf_gradrnn.serving.export import export_saved_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "GradientRNN",
    "GradientRNNCell",
    "HamiltonianCell",
    "HamiltonianRNN",
    "MLPPotential",
    "MaskedMeanSquaredError",
    "NonFiniteGuard",
    "ScalarGradient",
    "distributed_fit",
    "export_saved_model",
    "value_and_gradient",
    "__version__",
]
