"""The benchmarked model in PyTorch (CPU, eager): a Python loop over time, dF/dh by
`torch.autograd.grad(..., create_graph=True)` or by hand.

    y_t, h_t = F(x_t, h_{t-1}), dF/dh(x_t, h_{t-1})     (see benchmarks/spec.py)

`Model(weights, state_gradient, threads=None)` holds the weights as leaf tensors (their dtype
is the compute dtype) and offers the interface of `jax_peer.Model`; `threads` is PyTorch's
intra-op thread count for its calls (default: PyTorch's, one per core). On a machine shared
with other jobs, one thread can win: OpenMP's parallel regions wait for every thread.

    as_input(array)                     NumPy -> a torch tensor, once before timing
    infer(x) -> y                       x: (B, T, D) -> y: (B, T, 1), a NumPy array
    train_step(x, y) -> loss            one SGD step on the MSE, second order; a Python float
    loss_and_gradients(x, y)            the MSE and its gradient for each weight (NumPy)

With `state_gradient="autodiff"`, dF/dh is the gradient of the batch sum of F in h, taken with
`create_graph=True` when training so that `loss.backward()` differentiates it again (F is per
sample, so the batch sum's gradient is each sample's own); with `"by_hand"`, the written-out
back-propagation of `jax_peer`, which autograd differentiates once. Inference runs the by-hand
form under `torch.inference_mode()` and the autodiff form without `create_graph`.
"""

import numpy as np
import torch

STATE_GRADIENTS = ("autodiff", "by_hand")


def step_autodiff(params, h, x, create_graph):
    w_1, b_1, w_2, b_2, w_out, b_out = params
    if not h.requires_grad:
        h = h.detach().requires_grad_()
    a_1 = torch.tanh(torch.cat([x, h], dim=-1) @ w_1 + b_1)
    a_2 = torch.tanh(a_1 @ w_2 + b_2)
    f = (a_2 @ w_out)[:, 0] + b_out[0]
    (gradient,) = torch.autograd.grad(f.sum(), h, create_graph=create_graph)
    return gradient, f


def step_by_hand(params, h, x, create_graph):
    w_1, b_1, w_2, b_2, w_out, b_out = params
    features = x.shape[-1]
    w_x, w_h = w_1[:features], w_1[features:]
    a_1 = torch.tanh(x @ w_x + h @ w_h + b_1)
    a_2 = torch.tanh(a_1 @ w_2 + b_2)
    f = (a_2 @ w_out)[:, 0] + b_out[0]
    delta_2 = (1 - a_2 * a_2) * w_out[:, 0]
    delta_1 = (delta_2 @ w_2.T) * (1 - a_1 * a_1)
    return delta_1 @ w_h.T, f


def forward(params, x, step, create_graph):
    """y: (B, T, 1) for x: (B, T, D), looping `step` over time from h_0 = 0."""
    units = params[0].shape[0] - x.shape[-1]
    h = torch.zeros(x.shape[0], units, dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        h, f = step(params, h, x[:, t], create_graph)
        ys.append(f)
    return torch.stack(ys, dim=1)[:, :, None]


class Model:
    def __init__(
        self,
        weights,
        state_gradient: str = "by_hand",
        learning_rate: float = 1e-3,
        threads: int | None = None,
    ):
        if state_gradient not in STATE_GRADIENTS:
            raise ValueError(f"state_gradient must be one of {STATE_GRADIENTS}")
        # torch.set_num_threads is process-wide, so each call sets its model's own count.
        self.threads = threads or torch.get_num_threads()
        self.by_hand = state_gradient == "by_hand"
        self.step = step_by_hand if self.by_hand else step_autodiff
        self.params = [torch.tensor(np.asarray(w)).requires_grad_() for w in weights]
        self.dtype = self.params[0].dtype
        self.learning_rate = learning_rate

    def as_input(self, array):
        return torch.tensor(np.asarray(array), dtype=self.dtype)

    def infer(self, x):
        torch.set_num_threads(self.threads)
        if self.by_hand:
            with torch.inference_mode():
                return forward(self.params, x, self.step, False).numpy()
        return forward(self.params, x, self.step, False).detach().numpy()

    def _loss(self, x, y):
        return torch.mean((forward(self.params, x, self.step, True) - y) ** 2)

    def train_step(self, x, y):
        torch.set_num_threads(self.threads)
        loss = self._loss(x, y)
        loss.backward()
        with torch.no_grad():
            for p in self.params:
                p -= self.learning_rate * p.grad
                p.grad = None
        return loss.item()

    def loss_and_gradients(self, x, y):
        loss = self._loss(x, y)
        grads = torch.autograd.grad(loss, self.params)
        return loss.item(), [g.numpy() for g in grads]

    def weights(self):
        return [p.detach().numpy().copy() for p in self.params]
