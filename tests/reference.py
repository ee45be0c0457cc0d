"""An independent NumPy implementation of the gradient-state RNN with an MLP potential.

Written out by hand (no autodiff), so tests can compare the package against it and take finite
differences of it without sharing a code path with TensorFlow.
"""

import numpy as np


def split_weights(weights):
    """`[W_1, b_1, ..., w_out, b_out]` -> (hidden [(W, b), ...], (w_out, b_out))."""
    pairs = list(zip(weights[0::2], weights[1::2], strict=True))
    return pairs[:-1], pairs[-1]


def potential_and_state_gradient(weights, x, h):
    """F(x, h): (batch,) and dF/dh: (batch, units) for a tanh MLP, by hand-written backprop."""
    hidden, (w_out, b_out) = split_weights(weights)
    a = np.concatenate([x, h], axis=-1)
    activations = []
    for w, b in hidden:
        a = np.tanh(a @ w + b)
        activations.append(a)
    f = (a @ w_out + b_out)[:, 0]
    delta = np.broadcast_to(w_out[:, 0], a.shape)
    for (w, _), a in zip(reversed(hidden), reversed(activations), strict=True):
        delta = (delta * (1.0 - a**2)) @ w.T
    return f, delta[:, x.shape[-1] :]


def run(weights, x, h0=None):
    """Runs over `x: (batch, time, features)`; returns y (batch, time), h (batch, time, units)."""
    units = weights[0].shape[0] - x.shape[-1]
    h = np.zeros((x.shape[0], units)) if h0 is None else h0
    ys, hs = [], []
    for t in range(x.shape[1]):
        y, h = potential_and_state_gradient(weights, x[:, t], h)
        ys.append(y)
        hs.append(h)
    return np.stack(ys, axis=1), np.stack(hs, axis=1)


def loss(weights, x, target):
    """Sum of squared errors of y over all samples and steps."""
    y, _ = run(weights, x)
    return np.sum((y - target) ** 2)


def finite_difference_gradients(fn, weights, eps=1e-5):
    """Central differences of scalar `fn(weights)` with respect to every weight entry."""
    grads = []
    for i, w in enumerate(weights):
        g = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            plus = [v.copy() for v in weights]
            minus = [v.copy() for v in weights]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (fn(plus) - fn(minus)) / (2 * eps)
        grads.append(g)
    return grads


def max_relative_error(actual, expected):
    """max |a - e| / max(|e|, 1e-3) over all entries of lists of arrays."""
    worst = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        worst = max(worst, float(np.max(np.abs(a - e) / np.maximum(np.abs(e), 1e-3))))
    return worst
