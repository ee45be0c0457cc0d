"""The Hamiltonian RNN layer: `HamiltonianCell` run over a sequence by `keras.layers.RNN`."""

from collections.abc import Sequence

import keras

from tf_gradrnn.cell_rnn import CellRNN
from tf_gradrnn.hamiltonian_cell import HamiltonianCell


@keras.saving.register_keras_serializable(package="tf_gradrnn")
class HamiltonianRNN(CellRNN):
    """A recurrent layer whose state (q, p) follows Hamilton's equations for a learned H.

        (q_t, p_t) = symplectic step of size dt for H(q, p[, x_t]) from (q_{t-1}, p_{t-1})
        y_t = q_t  or  [q_t, p_t]          x: (batch, time, features), q, p: (batch, d)

    This is `keras.layers.RNN(HamiltonianCell(...))` with the cell's arguments taken directly
    (see `HamiltonianCell` for the integrators and their cost), so `initial_state=`, masking,
    `go_backwards`, `stateful` and `unroll` work as for any Keras RNN. The initial state
    `[q_0, p_0]` is zero unless given; `y_t` is the state after step t, so `y_1` is already one
    step of `dt` past `(q_0, p_0)`. Training with `model.fit` on observed trajectories
    differentiates through every gradient of H (second order). Every cell argument is also a
    read-only attribute (`layer.dt`, `layer.hamiltonian`, ...), and `layer.run_with_states(x)`
    returns every output and the states `[q_t, p_t]` of every step (see `CellRNN`).

    Args:
        coordinates: d, the number of coordinates q and of momenta p.
        hidden_units: widths of the default H's hidden layers.
        activation: activation of the default H (twice differentiable, e.g. `tanh`).
        hamiltonian: optional Keras layer or model, `(batch, 2d [+ features]) -> (batch, 1)`.
        dt: time advanced per step of the sequence.
        integrator: `"leapfrog"` or `"symplectic_euler"`.
        substeps: integrator steps per step of the sequence.
        implicit_iterations: fixed-point sweeps of the implicit equations (exact at 1 for a
            separable H).
        control: whether H also takes x_t (else x only sets the number of steps).
        observe: `"q"` (outputs `(batch, time, d)`) or `"qp"` (`(batch, time, 2d)`).
        return_sequences: return every `y_t` instead of the last.
        return_state: also return the final `q_T`, `p_T`.
        go_backwards, stateful, unroll: as for `keras.layers.RNN`.
        **kwargs: base `keras.layers.RNN` / `Layer` arguments (`name`, `dtype`, ...).
            Under a mixed `dtype` (`"mixed_float16"`, `"mixed_bfloat16"`) the variables and
            the cell's computation are float32 and the outputs come in the compute dtype, as
            for Keras' own RNN layers.

    Call arguments:
        sequences: `(batch, time, features)` floating-point tensor.
        initial_state: optional `[q_0, p_0]`, each `(batch, d)`.
        mask: optional `(batch, time)` boolean tensor; by default the Keras mask of
            `sequences`, also with `initial_state=`. A masked step keeps the state `(q, p)`
            and outputs the last real step's `y`, zeros before the first real step (with
            `zero_output_for_mask=True`, every masked step outputs zeros), as `GradientRNN`.
        training: passed to H.

    Returns:
        `y` as above, followed by `q_T, p_T` when `return_state=True`.

    Example:

    ```python
    layer = HamiltonianRNN(1, hidden_units=(64, 64), dt=0.1, return_sequences=True)
    q = layer(np.zeros((8, 30, 1), "float32"), initial_state=[q0, p0])  # (8, 30, 1)
    ```

    References:
        Chen, Zhang, Arjovsky, Bottou, "Symplectic Recurrent Neural Networks", ICLR 2020.
    """

    CELL_CLASS = HamiltonianCell
    CELL_ARGUMENTS = (
        "coordinates",
        "hidden_units",
        "activation",
        "hamiltonian",
        "dt",
        "integrator",
        "substeps",
        "implicit_iterations",
        "control",
        "observe",
    )

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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        **kwargs,
    ):
        super().__init__(
            {
                "coordinates": coordinates,
                "hidden_units": hidden_units,
                "activation": activation,
                "hamiltonian": hamiltonian,
                "dt": dt,
                "integrator": integrator,
                "substeps": substeps,
                "implicit_iterations": implicit_iterations,
                "control": control,
                "observe": observe,
            },
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
