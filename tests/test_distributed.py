"""Distributed training ends with the weights of a single-device run.

- `MirroredStrategy` over 2 logical CPU devices, `model.fit`, matches one device with the same
  global batch (both `state_gradient` paths), to float32 round-off.
- XLA under `MirroredStrategy`: Keras' `jit_compile=True` compiles the whole distributed step,
  which fails; compiling the per-replica step of a custom loop works and matches.
- `NonFiniteGuard` under `distributed_fit` and `MirroredStrategy` puts every replica's copy
  of the weights and of Adam's state back as the epoch began.
- A 2-worker `MultiWorkerMirroredStrategy` run (two local processes on 127.0.0.1): both workers
  end with identical weights that match a single-process `model.fit`. The workers train with a
  custom loop because Keras 3.15's `model.fit` fails under this strategy (strict xfail below).

Run as a script, this file is the process the tests start: logical devices must be configured
before TensorFlow initializes its devices, and every worker of a cluster is its own process.

    python tests/test_distributed.py mirrored OUT_DIR
    TF_CONFIG='{...}' python tests/test_distributed.py worker OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import processes  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402

SAMPLES, STEPS, FEATURES, UNITS = 16, 6, 3, 4
GLOBAL_BATCH, EPOCHS, LEARNING_RATE = 8, 3, 0.1  # 2 steps an epoch, 6 steps in all
TIMEOUT = 180  # seconds, for each group of processes
STATE_GRADIENTS = ("closed_form", "tape")


# ---- the training runs, shared by the test process and the processes it starts ----


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, STEPS, FEATURES)).astype("float32")
    y = rng.standard_normal((SAMPLES, STEPS)).astype("float32")
    return x, y


def build_model(state_gradient="closed_form"):
    """The model, with initial weights from NumPy: identical in every process and strategy."""
    model = keras.Sequential(
        [
            keras.Input((STEPS, FEATURES)),
            tf_gradrnn.GradientRNN(
                UNITS, hidden_units=(8,), state_gradient=state_gradient, return_sequences=True
            ),
            keras.layers.Reshape((-1,)),
        ]
    )
    rng = np.random.default_rng(1)
    model.set_weights([0.5 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def train_with_fit(strategy, state_gradient="closed_form", jit_compile=False):
    with strategy.scope():
        model = build_model(state_gradient)
        model.compile(
            optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse", jit_compile=jit_compile
        )
    model.fit(*data(), batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model.get_weights()


def train_with_loop(strategy, xla_per_replica=False):
    """SGD on the mean squared error over each global batch, as `model.fit` does, written with
    `strategy.run`. With `xla_per_replica`, each replica's forward and backward pass is an XLA
    computation on its own device; the all-reduce of the gradients stays outside XLA."""
    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.SGD(LEARNING_RATE)
        optimizer.build(model.trainable_variables)
    dataset = tf.data.Dataset.from_tensor_slices(data()).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function(jit_compile=xla_per_replica)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            per_sample = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)
            loss = tf.reduce_sum(per_sample) / GLOBAL_BATCH
        return tape.gradient(loss, model.trainable_variables)

    @tf.function
    def train_step(x, y):
        def replica_step(x, y):
            grads = gradients(x, y)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        strategy.run(replica_step, args=(x, y))

    for _ in range(EPOCHS):
        for x, y in dataset:
            train_step(x, y)
    return model.get_weights()


def ragged_data():
    """Padded sequences of 1..STEPS steps: the replicas' shares hold unequal real steps."""
    x, y = data()
    lengths = np.random.default_rng(2).integers(1, STEPS + 1, SAMPLES)
    return x, y, (np.arange(STEPS) < lengths[:, None]).astype("float32")


def train_ragged(strategy, loop, loss=None):
    """Adam with gradient clipping and loss scaling on ragged data, 13 sequences in batches
    of 4 (the last batch holds 1), by `distributed_fit` (`loop`) or by `model.fit`."""
    x, y, weights = (a[:13] for a in ragged_data())
    y = y[..., None]  # (b, T, 1), the shape Keras' own loss needs with (b, T) weights
    with strategy.scope():
        model = build_model()
        model = keras.Model(model.inputs, model.layers[0].output)  # without the Reshape
        # Loss scaling too: the clipped sum must be unscaled first (mixed precision).
        optimizer = keras.optimizers.Adam(0.05, global_clipnorm=0.5, loss_scale_factor=64.0)
        model.compile(optimizer, loss=loss or tf_gradrnn.MaskedMeanSquaredError())
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(4)
    if loop:
        history = tf_gradrnn.distributed_fit(
            model, dataset.repeat(EPOCHS), epochs=EPOCHS, steps_per_epoch=4, verbose=0
        )
    else:
        history = model.fit(dataset, epochs=EPOCHS, shuffle=False, verbose=0)
    return model.get_weights(), history.history["loss"]


def guard_restores_every_replica(strategy):
    """`distributed_fit` with Adam on clean data, then on data with a NaN in its second
    batch under `NonFiniteGuard`: the guard's error, and whether every replica's copy of
    every weight and optimizer variable is again what it was when that epoch began."""
    with strategy.scope():
        model = build_model()
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    x, y = data()
    poisoned = x.copy()
    poisoned[GLOBAL_BATCH + 1, 0, 0] = np.nan

    def fit(x, callbacks=()):
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        tf_gradrnn.distributed_fit(
            model, dataset, epochs=1, steps_per_epoch=2, callbacks=callbacks, verbose=0
        )

    fit(x)  # Adam's moments are non-zero from here on
    variables = [*model.weights, *model.optimizer.variables]
    before = [v.numpy() for v in variables]
    try:
        fit(poisoned, [tf_gradrnn.NonFiniteGuard()])
        error = None
    except FloatingPointError as raised:
        error = str(raised)
    copies = [strategy.experimental_local_results(v.value) for v in variables]
    restored = all(
        np.array_equal(copy.numpy(), value)
        for value, replicas in zip(before, copies, strict=True)
        for copy in replicas
    )
    return error, restored and all(len(replicas) == 2 for replicas in copies)


def save_weights(path, weights):
    np.savez(path, *weights)


def load_weights(path):
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def describe(error):
    return f"{type(error).__name__}: {error}"


def run_mirrored(out):
    """Configures 2 logical CPUs, then trains on one of them and mirrored over both."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for state_gradient in STATE_GRADIENTS:
        for name, strategy in (("one", one_device), ("mirrored", mirrored)):
            weights = train_with_fit(strategy, state_gradient)
            save_weights(out / f"{name}_{state_gradient}.npz", weights)
    report = {"replicas": mirrored.num_replicas_in_sync, "fit_jit_error": None}
    try:
        train_with_fit(mirrored, jit_compile=True)
    except Exception as error:  # what Keras' jit_compile=True does under the strategy
        report["fit_jit_error"] = describe(error)
    save_weights(out / "mirrored_loop_xla.npz", train_with_loop(mirrored, xla_per_replica=True))
    losses = {}
    for name, strategy, loop, loss in (
        ("ragged_one", one_device, False, None),
        ("ragged_mirrored", mirrored, True, None),
        (
            "ragged_mirrored_keras_fit",
            mirrored,
            False,
            keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"),
        ),
    ):
        weights, losses[name] = train_ragged(strategy, loop, loss)
        save_weights(out / f"{name}.npz", weights)
    report["ragged_losses"] = losses
    report["guard_error"], report["guard_restored"] = guard_restores_every_replica(mirrored)
    (out / "mirrored.json").write_text(json.dumps(report))


def run_worker(out):
    """One worker of the cluster in TF_CONFIG: a custom loop, then an attempt at model.fit."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    save_weights(out / f"worker{index}_loop.npz", train_with_loop(strategy))
    weights, _ = train_ragged(strategy, loop=True)
    save_weights(out / f"worker{index}_ragged.npz", weights)
    report = {"replicas": strategy.num_replicas_in_sync, "fit_error": None}
    try:
        save_weights(out / f"worker{index}_fit.npz", train_with_fit(strategy))
    except Exception as error:
        report["fit_error"] = describe(error)
    (out / f"worker{index}.json").write_text(json.dumps(report))


# ---- process handling ----


def run_processes(commands, envs, log_dir, timeout=TIMEOUT):
    """Runs the commands at once (see `processes.run_processes`); logs go to `log_dir`."""
    logs = [log_dir / f"process{i}.log" for i in range(len(commands))]
    return processes.run_processes(commands, envs, logs, timeout)


def process_env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    return {**env, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def logs_of(log_dir):
    return "\n".join(
        f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(log_dir.glob("*.log"))
    )


def assert_same_weights(actual, expected, what):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        # 6 SGD steps in float32: the difference is summation order, ~1e-7 relative.
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6, err_msg=f"{what}, weight {i}")


# ---- tests ----


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    command = [sys.executable, __file__, "mirrored", str(out)]
    (code,) = run_processes([command], [process_env()], out)
    assert code == 0, logs_of(out)
    return out, json.loads((out / "mirrored.json").read_text())


@pytest.mark.parametrize("state_gradient", STATE_GRADIENTS)
def test_mirrored_strategy_matches_one_device(mirrored_run, state_gradient):
    out, report = mirrored_run
    assert report["replicas"] == 2
    one = load_weights(out / f"one_{state_gradient}.npz")
    mirrored = load_weights(out / f"mirrored_{state_gradient}.npz")
    initial = build_model().get_weights()
    assert not all(np.array_equal(w, w0) for w, w0 in zip(one, initial, strict=True))
    assert_same_weights(mirrored, one, "MirroredStrategy vs one device")


def test_xla_under_mirrored_strategy(mirrored_run):
    out, report = mirrored_run
    # Keras compiles its whole step, strategy.run included, as one XLA computation on one
    # device, which cannot reach the other replica's variables.
    assert report["fit_jit_error"] is not None
    assert "located in device" in report["fit_jit_error"], report["fit_jit_error"]
    # Compiling each replica's forward and backward pass instead works.
    assert_same_weights(
        load_weights(out / "mirrored_loop_xla.npz"),
        load_weights(out / "one_closed_form.npz"),
        "MirroredStrategy with per-replica XLA vs one device",
    )


def test_distributed_fit_with_ragged_data_and_clipping_matches_one_device(mirrored_run):
    out, report = mirrored_run
    one = load_weights(out / "ragged_one.npz")
    assert_same_weights(load_weights(out / "ragged_mirrored.npz"), one, "distributed_fit")
    losses = report["ragged_losses"]
    np.testing.assert_allclose(losses["ragged_mirrored"], losses["ragged_one"], rtol=1e-5)
    # What distributed_fit and MaskedMeanSquaredError fix: Keras' fit with its own loss
    # averages the replicas' per-replica means, and clips each replica's gradient alone.
    keras_fit = load_weights(out / "ragged_mirrored_keras_fit.npz")
    assert max(np.abs(a - b).max() for a, b in zip(keras_fit, one, strict=True)) > 1e-3


def test_non_finite_guard_restores_every_replica(mirrored_run):
    _, report = mirrored_run
    assert "loss is nan at epoch 1, batch 2" in report["guard_error"], report["guard_error"]
    assert report["guard_restored"]


@pytest.fixture(scope="module")
def multi_worker_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi_worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in processes.free_ports(2)]}
    tasks = [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)]
    envs = [process_env(TF_CONFIG=json.dumps(task)) for task in tasks]
    command = [sys.executable, __file__, "worker", str(out)]
    codes = run_processes([command, command], envs, out)
    assert codes == [0, 0], logs_of(out)
    return out, [json.loads((out / f"worker{i}.json").read_text()) for i in range(2)]


def test_multi_worker_strategy_matches_single_process(multi_worker_run):
    out, reports = multi_worker_run
    assert [report["replicas"] for report in reports] == [2, 2]
    first, second = (load_weights(out / f"worker{i}_loop.npz") for i in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # the all-reduce gives both workers the same bits
    single = train_with_fit(tf.distribute.get_strategy())
    assert_same_weights(first, single, "2 workers vs single-process model.fit")


def test_distributed_fit_on_two_workers_matches_one_device(multi_worker_run):
    out, _ = multi_worker_run
    first, second = (load_weights(out / f"worker{i}_ragged.npz") for i in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    single, _ = train_ragged(tf.distribute.get_strategy(), loop=False)
    assert_same_weights(first, single, "distributed_fit on 2 workers vs one device")


@pytest.mark.xfail(
    strict=True,
    reason="Keras 3.15 model.fit fails under MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585): strategy.reduce of the first batch, then of scalar metrics",
)
def test_model_fit_under_multi_worker_strategy(multi_worker_run):
    out, reports = multi_worker_run
    assert [report["fit_error"] for report in reports] == [None, None]
    first, second = (load_weights(out / f"worker{i}_fit.npz") for i in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    single = train_with_fit(tf.distribute.get_strategy())
    assert_same_weights(first, single, "2 workers' model.fit vs single-process model.fit")


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    {"mirrored": run_mirrored, "worker": run_worker}[mode](out_dir)
