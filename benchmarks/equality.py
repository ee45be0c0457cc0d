"""The JAX and PyTorch peers compute what tf_gradrnn computes: outputs and loss gradients.

    python benchmarks/equality.py --size small       # prints the largest relative differences

On the same float64 weights and data (`benchmarks/spec.py`, the first 20 time steps), each
peer (JAX and PyTorch, dF/dh by autodiff and by hand) is compared with tf_gradrnn: the outputs
y: (B, T, 1), the MSE, and its gradient with respect to each of the six weights, each computed
by its own framework's autodiff. The difference is max |peer - ours| / max |ours| per tensor.
"""

import argparse
import sys

import numpy as np
import ours
from spec import SIZES, Size, batch_data, initial_weights

TOLERANCE = 1e-10
CHECK_STEPS = 20


def peer_models():
    """{name: Model class and state_gradient} of every peer (imports JAX and PyTorch)."""
    from peers import jax_peer, torch_peer

    return {
        f"{framework} {state_gradient}": (module.Model, state_gradient)
        for framework, module in (("jax", jax_peer), ("torch", torch_peer))
        for state_gradient in module.STATE_GRADIENTS
    }


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def differences(size: Size, max_steps: int = CHECK_STEPS) -> dict[str, dict[str, float]]:
    """{peer: {quantity: relative difference to ours}}, float64, on the size's weights and its
    first `max_steps` time steps (the same model; a shorter sequence keeps the check quick)."""
    weights = initial_weights(size, dtype="float64")
    x, y = batch_data(size, dtype="float64")
    x, y = x[:, :max_steps], y[:, :max_steps]
    reference = ours.Model(size, weights, jit_compile=False)
    ours_y = reference.infer(reference.as_input(x))
    ours_loss, ours_grads = reference.loss_and_gradients(
        reference.as_input(x), reference.as_input(y)
    )
    result = {}
    for name, (model_class, state_gradient) in peer_models().items():
        peer = model_class(weights, state_gradient)
        px, py = peer.as_input(x), peer.as_input(y)
        loss, grads = peer.loss_and_gradients(px, py)
        result[name] = {
            "y": relative_difference(peer.infer(px), ours_y),
            "loss": relative_difference(loss, ours_loss),
            **{
                f"dL/d{label}": relative_difference(g, g_ours)
                for label, g, g_ours in zip(
                    ("W_1", "b_1", "W_2", "b_2", "w_out", "b_out"), grads, ours_grads, strict=True
                )
            },
        }
    return result


def check(size: Size, tolerance: float = TOLERANCE) -> dict[str, dict[str, float]]:
    """`differences(size)`, or AssertionError naming every quantity above `tolerance`."""
    result = differences(size)
    bad = [
        f"{peer} {quantity}: {value:.1e}"
        for peer, values in result.items()
        for quantity, value in values.items()
        if not value <= tolerance
    ]
    if bad:
        raise AssertionError(
            f"peers differ from tf_gradrnn beyond {tolerance:g}: " + "; ".join(bad)
        )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args(argv)
    for peer, values in check(SIZES[args.size]).items():
        print(f"{peer}: " + ", ".join(f"{k} {v:.1e}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
