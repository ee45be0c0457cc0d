"""The benchmarked model in JAX: `lax.scan` over time, `jax.jit`, dF/dh by `jax.vjp` or by hand.

    y_t, h_t = F(x_t, h_{t-1}), dF/dh(x_t, h_{t-1})     (see benchmarks/spec.py)

`Model(weights, state_gradient)` holds the weights as a tuple of arrays (their dtype is the
compute dtype) and offers:

    as_input(array)                     NumPy -> a JAX array, once before timing
    infer(x) -> y                       x: (B, T, D) -> y: (B, T, 1), a NumPy array
    train_step(x, y) -> loss            one SGD step on the MSE, second order; a Python float
    loss_and_gradients(x, y)            the MSE and its gradient for each weight (NumPy)

With `state_gradient="autodiff"`, dF/dh is `jax.vjp` of F in h with a cotangent of ones (F is
per sample, so this is each sample's gradient); with `"by_hand"`, back-propagation written out:

    delta_2 = (1 - a_2^2) * w_out^T,  delta_1 = (delta_2 W_2^T) * (1 - a_1^2),
    dF/dh = delta_1 W_h^T,  W_h = W_1[D:]
"""

import jax
import jax.numpy as jnp
import numpy as np

# Float64 is needed for the equality checks; float32 arrays stay float32.
jax.config.update("jax_enable_x64", True)

STATE_GRADIENTS = ("autodiff", "by_hand")


def potential(params, x, h):
    """F(x, h): (B,) for x: (B, D), h: (B, H)."""
    w_1, b_1, w_2, b_2, w_out, b_out = params
    a_1 = jnp.tanh(jnp.concatenate([x, h], axis=-1) @ w_1 + b_1)
    a_2 = jnp.tanh(a_1 @ w_2 + b_2)
    return (a_2 @ w_out)[:, 0] + b_out[0]


def step_autodiff(params, h, x):
    f, pullback = jax.vjp(lambda state: potential(params, x, state), h)
    (gradient,) = pullback(jnp.ones_like(f))
    return gradient, f


def step_by_hand(params, h, x):
    w_1, b_1, w_2, b_2, w_out, b_out = params
    features = x.shape[-1]
    w_x, w_h = w_1[:features], w_1[features:]
    a_1 = jnp.tanh(x @ w_x + h @ w_h + b_1)
    a_2 = jnp.tanh(a_1 @ w_2 + b_2)
    f = (a_2 @ w_out)[:, 0] + b_out[0]
    delta_2 = (1 - a_2 * a_2) * w_out[:, 0]
    delta_1 = (delta_2 @ w_2.T) * (1 - a_1 * a_1)
    return delta_1 @ w_h.T, f


def forward(params, x, step):
    """y: (B, T, 1) for x: (B, T, D), scanning `step` over time from h_0 = 0."""
    units = params[0].shape[0] - x.shape[-1]
    h_0 = jnp.zeros((x.shape[0], units), x.dtype)
    _, ys = jax.lax.scan(lambda h, x_t: step(params, h, x_t), h_0, jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(ys, 0, 1)[:, :, None]


def mse(params, x, y, step):
    return jnp.mean((forward(params, x, step) - y) ** 2)


class Model:
    def __init__(self, weights, state_gradient: str = "by_hand", learning_rate: float = 1e-3):
        if state_gradient not in STATE_GRADIENTS:
            raise ValueError(f"state_gradient must be one of {STATE_GRADIENTS}")
        step = step_by_hand if state_gradient == "by_hand" else step_autodiff
        self.params = tuple(jnp.asarray(w) for w in weights)
        self.dtype = self.params[0].dtype
        self._infer = jax.jit(lambda params, x: forward(params, x, step))
        loss_and_grad = jax.value_and_grad(lambda params, x, y: mse(params, x, y, step))
        self._loss_and_grad = jax.jit(loss_and_grad)

        def sgd(params, x, y):
            loss, grads = loss_and_grad(params, x, y)
            return tuple(p - learning_rate * g for p, g in zip(params, grads, strict=True)), loss

        self._sgd = jax.jit(sgd, donate_argnums=0)

    def as_input(self, array):
        """A NumPy array as this framework's array, once, before the timed calls."""
        return jnp.asarray(array, self.dtype)

    def infer(self, x):
        return np.asarray(self._infer(self.params, x))

    def train_step(self, x, y):
        self.params, loss = self._sgd(self.params, x, y)
        return float(loss)

    def loss_and_gradients(self, x, y):
        loss, grads = self._loss_and_grad(self.params, x, y)
        return float(loss), [np.asarray(g) for g in grads]

    def weights(self):
        return [np.asarray(p) for p in self.params]
