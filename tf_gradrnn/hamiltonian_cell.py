"""The Hamiltonian RNN cell: a learned H(q, p) advanced by a symplectic integrator."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from tf_gradrnn import validation
from tf_gradrnn.network_cell import ScalarNetworkCell
from tf_gradrnn.scalar_gradient import ScalarGradient

INTEGRATORS = ("leapfrog", "symplectic_euler")
OBSERVATIONS = ("q", "qp")


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class HamiltonianCell(ScalarNetworkCell):
    """An RNN cell whose state (q, p) follows Hamilton's equations for a learned scalar H.

        dq/dt = dH/dp (q, p, x_t),   dp/dt = -dH/dq (q, p, x_t)    q, p: (batch, d)
        y_t = q_t  (observe="q", (batch, d))  or  [q_t, p_t]  (observe="qp", (batch, 2d))

    One call advances the state by `dt` with `substeps` steps of size `h = dt / substeps` of a
    symplectic integrator. Writing `H_q`, `H_p` for the gradients of H (computed by a
    `ScalarGradient` layer, so training differentiates through them, second order):

        leapfrog (Stormer-Verlet), 2 * implicit_iterations + 2 gradients of H per step:
            p_half = p - h/2 H_q(q, p_half)
            q_next = q + h/2 (H_p(q, p_half) + H_p(q_next, p_half))
            p_next = p_half - h/2 H_q(q_next, p_half)
        symplectic Euler, implicit_iterations + 1 gradients of H per step:
            p_next = p - h H_q(q, p_next)
            q_next = q + h H_p(q, p_next)

    The implicit equations are solved by `implicit_iterations` fixed-point sweeps starting
    from `p_half = p` (resp. `p_next = p`) and `q_next = q + h H_p(q, p_half)`: a fixed
    number, so the step is XLA-compilable. For a separable H(q, p) = T(p) + V(q) one sweep is
    exact and these are the classic explicit schemes, symplectic to round-off: the energy
    then oscillates within O(h^2) (leapfrog) or O(h) (Euler) of its start without drift. For
    a non-separable learned H, each sweep shrinks the residual by about `h * |d2H/dqdp|`.

    H is `hamiltonian`, applied to `[q, p, x_t]` of width `2d + features` when
    `control=True`, else to `[q, p]`; by default an `MLPPotential(hidden_units,
    activation)`. The control x_t is held constant during the step. Without control the
    inputs only set the number of steps: feed `(batch, T, any)` zeros to run T steps.

    This implements the Keras 3 RNN cell contract (`state_size = [d, d]`, `output_size`,
    `call(inputs, states)`, `get_initial_state`); wrap it in `keras.layers.RNN` or use
    `tf_gradrnn.HamiltonianRNN`. Under a mixed policy the cell computes in float32 (the
    state is fed back), as `GradientRNNCell`; pure half-precision policies are refused.
    There is no `second_order=False`: every output is a gradient of H, so with a constant
    gradient H would receive no training signal at all.

    Args:
        coordinates: d, the number of coordinates q (and of momenta p), a positive int.
        hidden_units: widths of the default H's hidden layers (ignored with `hamiltonian`).
        activation: activation of the default H; twice differentiable (e.g. `tanh`).
        hamiltonian: optional Keras layer or model, `(batch, 2d [+ features]) -> (batch, 1)`.
        dt: time advanced per call, a positive finite float.
        integrator: `"leapfrog"` or `"symplectic_euler"`.
        substeps: integrator steps per call, a positive int.
        implicit_iterations: fixed-point sweeps for the implicit equations, a positive int.
        control: whether H also takes the input x_t.
        observe: `"q"` or `"qp"`, what the cell outputs.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(batch, features)` floating-point tensor.
        states: `[q, p]`, each `(batch, d)`.
        training: passed to H.

    Returns:
        `(y, [q_next, p_next])` with `y` as above.

    Example:

    ```python
    cell = HamiltonianCell(1, hidden_units=(32, 32), dt=0.1)
    layer = keras.layers.RNN(cell, return_sequences=True)
    q = layer(np.zeros((4, 50, 1), "float32"), initial_state=[q0, p0])  # (4, 50, 1)
    ```

    References:
        Greydanus, Dzamba, Yosinski, "Hamiltonian Neural Networks", NeurIPS 2019.
        Chen, Zhang, Arjovsky, Bottou, "Symplectic Recurrent Neural Networks", ICLR 2020.
        Hairer, Lubich, Wanner, "Geometric Numerical Integration", ch. VI.3.
    """

    NETWORK_ARGUMENT = "hamiltonian"
    STATE_NAMES = ("q", "p")
    DEFAULT_NAME = "hamiltonian_cell"

    def __init__(
        self,
        coordinates: int,
        hidden_units: Sequence[int] = (64, 64),
        activation="tanh",
        hamiltonian: keras.layers.Layer | None = None,
        dt: float = 0.1,
        integrator: str = "leapfrog",
        substeps: int = 1,
        implicit_iterations: int = 1,
        control: bool = False,
        observe: str = "q",
        **kwargs,
    ):
        super().__init__(**kwargs)
        validation.refuse_half_precision(
            self, "its state is fed back at every step and half-precision round-off compounds."
        )
        self.coordinates = validation.positive_int(coordinates, "coordinates")
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.activation = keras.activations.get(activation)
        self.dt = validation.positive_finite(dt, "dt")
        self.integrator = validation.one_of(integrator, INTEGRATORS, "integrator")
        self.substeps = validation.positive_int(substeps, "substeps")
        self.implicit_iterations = validation.positive_int(
            implicit_iterations, "implicit_iterations"
        )
        self.control = bool(control)
        self.observe = validation.one_of(observe, OBSERVATIONS, "observe")
        self.hamiltonian = self._scalar_network(hamiltonian, self.hidden_units, self.activation)
        # (q, p) come first in H's input, so the gradient columns do not depend on features.
        self.hamiltonian_gradient = ScalarGradient(
            self.hamiltonian,
            wrt=list(range(2 * self.coordinates)),
            dtype=self.dtype_policy,
            name="hamiltonian_gradient",
        )
        self.features = None
        d = self.coordinates
        self.state_size = [d, d]
        self.output_size = d if observe == "q" else 2 * d

    def build(self, input_shape):
        super().build(input_shape)
        width = 2 * self.coordinates + (self.features if self.control else 0)
        self.hamiltonian_gradient.build((input_shape[0], width))

    def _grad_h(self, q, p, inputs, training):
        z = [q, p, inputs] if self.control else [q, p]
        _, g = self.hamiltonian_gradient(tf.concat(z, axis=-1), training=training)
        return g[:, : self.coordinates], g[:, self.coordinates :]

    def _leapfrog(self, q, p, inputs, h, training):
        p_half = p
        for _ in range(self.implicit_iterations):
            h_q, _ = self._grad_h(q, p_half, inputs, training)
            p_half = p - 0.5 * h * h_q
        _, h_p = self._grad_h(q, p_half, inputs, training)
        q_next = q + h * h_p
        for _ in range(self.implicit_iterations):
            _, h_p_next = self._grad_h(q_next, p_half, inputs, training)
            q_next = q + 0.5 * h * (h_p + h_p_next)
        h_q, _ = self._grad_h(q_next, p_half, inputs, training)
        return q_next, p_half - 0.5 * h * h_q

    def _symplectic_euler(self, q, p, inputs, h, training):
        p_next = p
        for _ in range(self.implicit_iterations):
            h_q, _ = self._grad_h(q, p_next, inputs, training)
            p_next = p - h * h_q
        _, h_p = self._grad_h(q, p_next, inputs, training)
        return q + h * h_p, p_next

    def step_function(self, training=None):
        """The cell's step, `step(x, [q, p]) -> (y, [q_next, p_next])`: `substeps`
        integrator steps of size `dt / substeps`, for `call`, the layer's loop and export."""
        integrate = self._leapfrog if self.integrator == "leapfrog" else self._symplectic_euler
        h = self.dt / self.substeps

        def step(x, states):
            q, p = states
            for _ in range(self.substeps):
                q, p = integrate(q, p, x, h, training)
            y = q if self.observe == "q" else tf.concat([q, p], axis=-1)
            return y, [q, p]

        return step

    def get_config(self):
        return {
            **super().get_config(),
            "coordinates": self.coordinates,
            "hidden_units": list(self.hidden_units),
            "activation": keras.activations.serialize(self.activation),
            "dt": self.dt,
            "integrator": self.integrator,
            "substeps": self.substeps,
            "implicit_iterations": self.implicit_iterations,
            "control": self.control,
            "observe": self.observe,
        }
