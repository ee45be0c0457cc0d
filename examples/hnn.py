"""Hamiltonian Neural Networks (Greydanus, Dzamba, Yosinski, NeurIPS 2019), reproduced.

On the ideal mass-spring and the ideal pendulum, two models learn the time derivative
dx/dt of x = (q, p) from noisy observations (the authors' protocol, `tf_gradrnn.datasets.hnn`):

    baseline:     dx/dt = MLP(x)                           an MLP with 2 outputs
    Hamiltonian:  dx/dt = (dH/dp, -dH/dq),  H = MLP(x)     a ScalarGradient layer

Both are trained with `model.fit` on the mean squared error of dx/dt (the Hamiltonian model
through to second order, d2H/dx dtheta). Reported, as in the paper: the test loss, and the
energy MSE along 15 test trajectories of t in [0, 20] integrated from the models' fields
(RK4, 20 substeps between the 100 evaluation times), with the true energy and, for the
pendulum, also with q^2 + p^2 (the formula of the authors' analysis notebooks). The
Hamiltonian model is also integrated by a `HamiltonianRNN` sharing its H (symplectic
leapfrog), a column the paper does not have.

    python examples/hnn.py          # reduced: mass-spring, 500 steps; about 15 s on 2 cores
    python examples/hnn.py --full --seeds 0,1,2,3,4 --plots docs   # paper size, about 5 min

The reduced run asserts that the Hamiltonian model's energy MSE on mass-spring is at least
10x below the baseline's. Results and the comparison with the paper: docs/hnn.md.
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402
from tf_gradrnn import hnn_data  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--full", action="store_true", help="the paper's size: 2000 steps, 200 units")
parser.add_argument("--plots", default=None, help="directory for energy-over-time PNGs")
parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2,3,4")
args = parser.parse_args()
# H's output bias does not change dH/dx, so it never gets a gradient; Keras warns about it.
warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
# Every seed and system builds new models, so TensorFlow traces new functions on purpose.
tf.get_logger().setLevel("ERROR")

STEPS, UNITS = (2000, 200) if args.full else (500, 200)
SYSTEMS = hnn_data.SYSTEMS if args.full else ("mass_spring",)
T_SPAN, EVAL_POINTS, SUBSTEPS, TRIALS = 20.0, 100, 20, 15
# dx/dt = (dH/dp, -dH/dq) = grad H @ J for grad H = (dH/dq, dH/dp).
J = np.array([[0.0, -1.0], [1.0, 0.0]], "float32")


def mlp(outputs, name):
    """The authors' MLP: 2 -> UNITS -> UNITS -> outputs, tanh, orthogonal initialization."""
    layers = [keras.layers.Dense(UNITS, "tanh", kernel_initializer="orthogonal") for _ in "ab"]
    out = keras.layers.Dense(outputs, kernel_initializer="orthogonal")
    return keras.Sequential([keras.Input((2,)), *layers, out], name=name)


def hamiltonian_model():
    potential = tf_gradrnn.MLPPotential((UNITS, UNITS), kernel_initializer="orthogonal")
    x = keras.Input((2,))
    _, grad_h = tf_gradrnn.ScalarGradient(potential)(x)  # (batch, 1), (batch, 2)
    return keras.Model(x, keras.ops.matmul(grad_h, J), name="hamiltonian"), potential


def fit(model, data):
    # Full batch, Adam(1e-3), as the authors; 100 steps per compiled call to save overhead.
    model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=True, steps_per_execution=100)
    x, dx = data.x.astype("float32"), data.dx.astype("float32")
    batches = tf.data.Dataset.from_tensors((x, dx)).repeat()
    model.fit(batches, steps_per_epoch=STEPS, epochs=1, shuffle=False, verbose=0)
    predicted = keras.ops.convert_to_numpy(model(data.test_x.astype("float32")))
    return float(np.mean((predicted - data.test_dx) ** 2))


def rk4_integrate(field, x0, t):
    """States `(n, len(t), 2)` of dx/dt = field(x) from `x0: (n, 2)`, RK4 with SUBSTEPS."""
    h = float(t[1] - t[0]) / SUBSTEPS

    @tf.function
    def advance(x):
        for _ in tf.range(SUBSTEPS):
            k1 = field(x)
            k2 = field(x + 0.5 * h * k1)
            k3 = field(x + 0.5 * h * k2)
            k4 = field(x + h * k3)
            x = x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return x

    xs = [tf.constant(x0, tf.float32)]
    for _ in t[1:]:
        xs.append(advance(xs[-1]))
    return np.stack([x.numpy() for x in xs], axis=1)


def leapfrog_integrate(potential, x0, t):
    """The same trajectories from a HamiltonianRNN sharing the learned H: leapfrog steps of
    the RK4 substep size, every SUBSTEPS-th state kept."""
    rnn = tf_gradrnn.HamiltonianRNN(
        1,
        hamiltonian=potential,
        dt=float(t[1] - t[0]) / SUBSTEPS,
        implicit_iterations=2,  # the learned H is not separable
        observe="qp",
        return_sequences=True,
    )
    clock = np.zeros((len(x0), (len(t) - 1) * SUBSTEPS, 1), "float32")  # (n, steps, 1)
    run = tf.function(lambda clock, q0, p0: rnn(clock, initial_state=[q0, p0]))
    states = run(clock, x0[:, :1].astype("float32"), x0[:, 1:].astype("float32")).numpy()
    return np.concatenate([x0[:, None], states[:, SUBSTEPS - 1 :: SUBSTEPS]], axis=1)


def energy_mse(energy_fn, states, truth):
    """Per trajectory: mean over time of (E(true) - E(model))^2, as the authors."""
    return np.mean((energy_fn(truth) - energy_fn(states)) ** 2, axis=1)


def spread(values, splits=5):
    """The authors' error bar: std of the means of 5 splits, over sqrt(5)."""
    return np.std([np.mean(v) for v in np.split(values, splits)]) / np.sqrt(splits)


def run(system, seed):
    """Trains both models on `system` for `seed`; returns test losses, energy MSEs, paths."""
    keras.utils.set_random_seed(seed)
    data = hnn_data.make_dataset(system, seed=seed)
    baseline, (hnn, potential) = mlp(2, "baseline"), hamiltonian_model()
    losses = {"baseline": fit(baseline, data), "hnn": fit(hnn, data)}
    x0 = hnn_data.energy_test_starts(TRIALS, seed=seed)
    paths = {
        "truth": hnn_data.trajectories(system, x0, t_eval),
        "baseline": rk4_integrate(lambda x: baseline(x, training=False), x0, t_eval),
        "hnn": rk4_integrate(lambda x: hnn(x, training=False), x0, t_eval),
        "hnn_leapfrog": leapfrog_integrate(potential, x0, t_eval),
    }
    metrics = {}
    # The true energy; and q^2 + p^2, the authors' notebook formula (the true energy only for
    # the spring; for the pendulum it is not conserved and also measures phase errors).
    for metric, energy_fn in [
        ("energy", lambda x: hnn_data.energy(system, x)),
        ("q2+p2", lambda x: np.sum(x**2, axis=-1)),
    ]:
        for name in ("baseline", "hnn", "hnn_leapfrog"):
            metrics[metric, name] = energy_mse(energy_fn, paths[name], paths["truth"])
    return losses, metrics, paths


def plot(system, paths, directory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    k = 0  # the first test trajectory
    for name, style in [
        ("truth", "k--"),
        ("baseline", "r-"),
        ("hnn", "b-"),
        ("hnn_leapfrog", "c:"),
    ]:
        path = paths[name][k]
        axes[0].plot(path[:, 0], path[:, 1], style, label=name)
        axes[1].plot(t_eval, hnn_data.energy(system, path), style, label=name)
    axes[0].set(xlabel="q", ylabel="p", title=f"{system}: phase space, t in [0, {T_SPAN:g}]")
    axes[1].set(xlabel="t", ylabel="true energy H(q, p)", title="energy along the trajectory")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(directory, f"hnn_{system}_energy.png")
    fig.savefig(path, dpi=110)
    print(f"  wrote {path}")


start = time.time()
t_eval = np.linspace(0.0, T_SPAN, EVAL_POINTS)
seeds = [int(s) for s in args.seeds.split(",")]
summary = {}
for system in SYSTEMS:
    for seed in seeds:
        losses, metrics, paths = run(system, seed)
        summary[system, seed] = losses, metrics
        print(f"\n{system}, seed {seed}: test loss baseline {losses['baseline']:.4e}, ", end="")
        print(f"Hamiltonian {losses['hnn']:.4e}")
        for (metric, name), values in metrics.items():
            if metric == "energy" or system == "pendulum":
                print(
                    f"  {metric:6s} MSE {name:13s} {np.mean(values):.4e} +/- {spread(values):.2e}"
                )
        if args.plots and seed == seeds[0]:
            plot(system, paths, args.plots)

if len(seeds) > 1:
    print(f"\nover seeds {seeds}: mean [min, max] of the per-seed values")

    def describe(label, v):
        print(f"  {label:40s} {np.mean(v):.3e} [{min(v):.3e}, {max(v):.3e}]")

    for system in SYSTEMS:
        rows = [summary[system, seed] for seed in seeds]
        for key in ("baseline", "hnn"):
            describe(f"{system} test loss {key}", [losses[key] for losses, _ in rows])
        for metric, name in rows[0][1]:
            means = [np.mean(metrics[metric, name]) for _, metrics in rows]
            describe(f"{system} {metric} MSE {name}", means)

print(f"\ntotal {time.time() - start:.0f} s")
spring = summary["mass_spring", seeds[0]][1]
ratio = np.mean(spring["energy", "baseline"]) / np.mean(spring["energy", "hnn"])
print(f"mass-spring energy MSE, baseline / Hamiltonian: {ratio:.0f}x")
assert ratio >= 10, f"the Hamiltonian model's energy error is only {ratio:.1f}x lower"
