"""Independent implementations for the tests to compare the package against.

NumPy models of the gradient-state RNN and of the Hamiltonian RNN with an MLP network, written
out by hand (no autodiff), so tests can take finite differences of them without sharing a code
path with TensorFlow; and `step_cell`, a plain Python loop over a cell.
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


def hamiltonian_gradient(weights, q, p, u):
    """(dH/dq, dH/dp) of a tanh MLP H at [q, p] (or [q, p, u] with a control u)."""
    z = np.concatenate([q, p] if u is None else [q, p, u], axis=-1)
    _, g = potential_and_state_gradient(weights, np.zeros((len(z), 0)), z)
    d = q.shape[1]
    return g[:, :d], g[:, d : 2 * d]


def hamiltonian_run(weights, x, q, p, integrator, control, substeps=2, iterations=2, dt=0.1):
    """The Hamiltonian RNN observing q: (batch, time, d), from (q, p), as in HamiltonianCell."""
    h, ys = dt / substeps, []
    for t in range(x.shape[1]):
        u = x[:, t] if control else None
        for _ in range(substeps):
            if integrator == "leapfrog":
                mid = p
                for _ in range(iterations):
                    mid = p - h / 2 * hamiltonian_gradient(weights, q, mid, u)[0]
                h_p = hamiltonian_gradient(weights, q, mid, u)[1]
                q_next = q + h * h_p
                for _ in range(iterations):
                    q_next = q + h / 2 * (h_p + hamiltonian_gradient(weights, q_next, mid, u)[1])
                q, p = q_next, mid - h / 2 * hamiltonian_gradient(weights, q_next, mid, u)[0]
            else:
                p_next = p
                for _ in range(iterations):
                    p_next = p - h * hamiltonian_gradient(weights, q, p_next, u)[0]
                q, p = q + h * hamiltonian_gradient(weights, q, p_next, u)[1], p_next
        ys.append(q)
    return np.stack(ys, axis=1)


def step_cell(cell, x, states, mask=None):
    """Calls `cell` step by step over `x: (batch, time, features)` from `states`, with Keras'
    masking: a masked step keeps the state and repeats the previous output (zeros at first).

    Returns outputs `(batch, time, output_size)` and one `(batch, time, size)` array per state.
    """
    outputs, history = [], []
    y_previous = None
    for t in range(x.shape[1]):
        y, new_states = cell(x[:, t], states)
        y, new_states = y.numpy(), [s.numpy() for s in new_states]
        if mask is not None:
            keep = mask[:, t, None]
            y_previous = np.zeros_like(y) if y_previous is None else y_previous
            y = np.where(keep, y, y_previous)
            new_states = [
                np.where(keep, n, np.asarray(s)) for n, s in zip(new_states, states, strict=True)
            ]
        states, y_previous = new_states, y
        outputs.append(y)
        history.append(states)
    per_state = [np.stack([h[i] for h in history], axis=1) for i in range(len(states))]
    return np.stack(outputs, axis=1), per_state
