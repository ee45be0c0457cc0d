"""The benchmarked model, framework-free: its sizes, initial weights, data and learning rate.

Every implementation in `benchmarks/` (tf_gradrnn, the naive Keras cell, the JAX and PyTorch
peers in `peers/`) computes, from the weights `[W_1, b_1, W_2, b_2, w_out, b_out]`,

    z_t = [x_t, h_{t-1}]                      x_t: (B, D), h: (B, H), z_t: (B, D + H)
    a_1 = tanh(z_t W_1 + b_1)                 W_1: (D + H, U)
    a_2 = tanh(a_1 W_2 + b_2)                 W_2: (U, U)
    y_t = F(z_t) = a_2 w_out + b_out          w_out: (U, 1), y_t: (B, 1)
    h_t = dF/dh (z_t)                         h_0 = 0, h_t: (B, H)

and trains it with the mean squared error over all B*T outputs and one SGD step of rate
`LEARNING_RATE`, differentiating through every h_t (second order).
"""

from dataclasses import dataclass

import numpy as np

LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Size:
    batch: int  # B
    steps: int  # T
    features: int  # D
    units: int  # H, the state size
    hidden: int  # U, the width of both hidden layers of F


SIZES = {
    "tiny": Size(batch=4, steps=5, features=3, units=4, hidden=8),
    "small": Size(batch=32, steps=50, features=8, units=16, hidden=64),
    "medium": Size(batch=128, steps=100, features=16, units=32, hidden=128),
    "large": Size(batch=256, steps=200, features=32, units=64, hidden=256),
}


def initial_weights(size: Size, seed: int = 0, dtype: str = "float32") -> list[np.ndarray]:
    """Glorot-uniform kernels and zero biases (the package's default init), in the order
    [W_1, b_1, W_2, b_2, w_out, b_out] that every implementation uses."""
    rng = np.random.default_rng(seed)
    widths = [size.features + size.units, size.hidden, size.hidden, 1]
    weights = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype))
        weights.append(np.zeros(fan_out, dtype))
    return weights


def batch_data(size: Size, seed: int = 1, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Inputs x: (B, T, D) and targets y: (B, T, 1), standard normal."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((size.batch, size.steps, size.features)).astype(dtype)
    y = rng.standard_normal((size.batch, size.steps, 1)).astype(dtype)
    return x, y
