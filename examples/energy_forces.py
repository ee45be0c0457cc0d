"""Energy and forces: force labels make a learned potential's forces better (about 15 s).

A small energy model E(x) learns the 2-D Muller-Brown potential V(x) from a few sampled
points. Its forces are F = -dE/dx, computed in the forward pass by a `ScalarGradient` layer,
so a loss on the forces trains E through to second order (d2E/dx dtheta):

    loss = mean (E - V)^2 + force_weight * mean |F + dV/dx|^2

The same network is trained twice on the same points, with force_weight 0 (energies only) and
1 (energies and forces), and both are scored on held-out points. Each force label adds two
numbers per point and pins down the potential's slope, so the held-out force error drops.

References:
    Muller, Brown, "Location of saddle points and minimum energy paths by a constrained
    simplex optimization procedure", Theoretica Chimica Acta 53 (1979).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402

STEPS = 3000
# V(x, y) = sum_k A_k exp(a_k dx^2 + b_k dx dy + c_k dy^2), dx = x - x_k, dy = y - y_k;
# divided by 100 so that energies and forces are of order one.
A = np.array([-200.0, -100.0, -170.0, 15.0]) / 100.0
a = np.array([-1.0, -1.0, -6.5, 0.7])
b = np.array([0.0, 0.0, 11.0, 0.6])
c = np.array([-10.0, -10.0, -6.5, 0.7])
X0 = np.array([1.0, 0.0, -0.5, -1.0])
Y0 = np.array([0.0, 0.5, 1.5, 1.0])


def muller_brown(points):
    """Energies `(n,)` and forces `-dV/dx`, `(n, 2)`, of `points: (n, 2)`."""
    dx = points[:, :1] - X0
    dy = points[:, 1:] - Y0
    terms = A * np.exp(a * dx**2 + b * dx * dy + c * dy**2)  # (n, 4)
    grad_x = np.sum(terms * (2 * a * dx + b * dy), axis=1)
    grad_y = np.sum(terms * (b * dx + 2 * c * dy), axis=1)
    return terms.sum(axis=1), -np.stack([grad_x, grad_y], axis=1)


def sample(n, rng):
    """`n` points of the box [-1.5, 1.2] x [-0.2, 2.0] with V below 0.5 (no steep walls)."""
    points = np.empty((0, 2))
    while len(points) < n:
        candidates = rng.uniform([-1.5, -0.2], [1.2, 2.0], size=(4 * n, 2))
        points = np.concatenate([points, candidates[muller_brown(candidates)[0] < 0.5]])
    return points[:n]


def train(force_weight, x, energies, forces, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))  # (batch, 2)
    potential = tf_gradrnn.MLPPotential((64, 64), activation="tanh", name="energy_model")
    energy, grad = tf_gradrnn.ScalarGradient(potential, name="energy_and_gradient")(
        inputs
    )  # (b, 1), (b, 2)
    outputs = {"energy": energy, "forces": keras.ops.negative(grad)}
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, STEPS)),
        loss={"energy": "mse", "forces": "mse"},
        loss_weights={"energy": 1.0, "forces": force_weight},
        jit_compile=True,
        steps_per_execution=100,
    )
    # Full batch: the same (x, targets) every step, 100 steps per compiled call.
    targets = {"energy": energies[:, None].astype("float32"), "forces": forces.astype("float32")}
    batches = tf.data.Dataset.from_tensors((x, targets)).repeat()
    model.fit(batches, steps_per_epoch=STEPS, epochs=1, shuffle=False, verbose=0)
    return model


rng = np.random.default_rng(0)
x_train, x_test = sample(64, rng).astype("float32"), sample(2000, rng).astype("float32")
e_train, f_train = muller_brown(x_train.astype(np.float64))
e_test, f_test = muller_brown(x_test.astype(np.float64))
print(f"{len(x_train)} training points, {len(x_test)} held-out points")

errors = {}
for force_weight in (0.0, 1.0):
    predicted = train(force_weight, x_train, e_train, f_train).predict(x_test, verbose=0)
    e_rmse = np.sqrt(np.mean((predicted["energy"][:, 0] - e_test) ** 2))
    f_rmse = np.sqrt(np.mean(np.sum((predicted["forces"] - f_test) ** 2, axis=1)))
    errors[force_weight] = e_rmse, f_rmse
    print(
        f"force_weight {force_weight}: held-out energy RMSE {e_rmse:.4f}, force RMSE {f_rmse:.4f}"
    )

gain = errors[0.0][1] / errors[1.0][1]
print(f"force labels lower the held-out force error {gain:.1f}x")
assert gain > 2, f"force labels lowered the held-out force error only {gain:.2f}x"
