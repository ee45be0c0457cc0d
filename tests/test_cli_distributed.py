"""`tf-gradrnn train --strategy mirrored | multi-worker` ends like the single-device run.

The data are ragged (padded sequences of 4..10 steps) and 38 training sequences in batches of
8 leave a last batch of 6, so the replicas' shares hold different numbers of real steps: the
masked loss's global denominator (`MaskedMeanSquaredError`) is what makes N replicas train
exactly like one device, and `distributed_fit` what makes `multi-worker` train at all.

- `mirrored` over 2 logical CPU devices: the run folder's weights and history equal those of
  `--strategy default`, to float32 round-off.
- `multi-worker`, two local worker processes sharing one `--output`: worker 0 writes the run
  folder, worker 1 writes nothing; same weights and history. Both killed (SIGKILL) once epoch 2
  is recorded and restarted with `--resume`, they end like the uninterrupted run.
- `TF_CONFIG` mistakes are one-line errors.

Run as a script, this file is the process the mirrored test starts (logical devices must be
configured before TensorFlow initializes its devices):

    python tests/test_cli_distributed.py DATA OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import processes  # noqa: E402
import pytest  # noqa: E402

import tf_gradrnn  # noqa: E402, F401  (registers the layers for load_model)

N, T, D = 48, 10, 2
OPTIONS = ["--epochs", "4", "--batch-size", "8", "--units", "3", "--hidden-units", "8"]
OPTIONS += ["--validation-split", "0.2", "--no-jit"]
TIMEOUT = 240  # seconds, for each group of processes


def write_data(path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype("float32")
    y = x[..., 0] * np.pad(x[:, :-1, 1], ((0, 0), (1, 0))) + 0.3 * x[..., 1]
    np.savez(path, x=x, y=y.astype("float32"), lengths=rng.integers(4, T + 1, N))


def run_mirrored(data: Path, out: Path) -> None:
    """Configures 2 logical CPUs, then trains with --strategy default and mirrored."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tf_gradrnn import cli

    for strategy in ("default", "mirrored"):
        argv = ["train", "--data", str(data), "--output", str(out / strategy), *OPTIONS]
        assert cli.main([*argv, "--strategy", strategy]) == 0


# ---- helpers ----


def weights(run: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run / "model.keras").get_weights()


def history(run: Path) -> np.ndarray:
    return np.loadtxt(run / "history.csv", delimiter=",", skiprows=1, ndmin=2)


def epochs_recorded(run: Path) -> int:
    path = run / "history.csv"  # written whole (renamed into place): never half a row
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def assert_same_run(actual: Path, expected: Path) -> None:
    # 4 epochs of Adam in float32: the difference is summation order, ~1e-7 relative.
    np.testing.assert_allclose(history(actual), history(expected), rtol=1e-5)
    for i, (a, e) in enumerate(zip(weights(actual), weights(expected), strict=True)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")


def env(**extra) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**base, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def log_tail(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in folder.glob("*.log"))


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "tf_gradrnn.cli", "train", *map(str, args)]


def run_workers(argv, folder: Path, name: str, expect=(0, 0), kill_when=None) -> list[str]:
    """Runs `tf-gradrnn train ARGV --strategy multi-worker` as a cluster of two workers
    (killed once `kill_when()` is true, see `processes.run_processes`)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in processes.free_ports(2)]}
    envs = [
        env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        for i in range(2)
    ]
    command = cli_command(*argv, "--strategy", "multi-worker")
    logs = [folder / f"{name}-worker{i}.log" for i in range(2)]
    codes = processes.run_processes([command, command], envs, logs, TIMEOUT, kill_when)
    assert codes == list(expect), log_tail(folder)
    return [log.read_text() for log in logs]


# ---- tests ----


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_distributed")
    write_data(out / "data.npz")
    log = out / "mirrored.log"
    command = [sys.executable, __file__, str(out / "data.npz"), str(out)]
    (code,) = processes.run_processes([command], [env()], [log], TIMEOUT)
    assert code == 0, log.read_text()[-3000:]
    return out, log.read_text()


def test_mirrored_run_matches_the_default_run(runs):
    out, log = runs
    assert "strategy: mirrored, 2 replicas" in log
    assert_same_run(out / "mirrored", out / "default")


def test_multi_worker_run_matches_the_default_run(runs):
    out, _ = runs
    run = out / "multi_worker"
    chief, worker = run_workers(["--data", out / "data.npz", "--output", run, *OPTIONS], out, "mw")
    assert "strategy: multi-worker, 2 replicas" in chief
    assert f"the chief writes the run folder {run}" in worker
    written = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(out / "default").as_posix()
        for p in (out / "default").rglob("*")
        if p.is_file()
    )
    assert [p for p in written if "logs/" not in p] == [p for p in expected if "logs/" not in p]
    assert_same_run(run, out / "default")


def test_multi_worker_run_killed_then_resumed_ends_like_the_uninterrupted_run(runs):
    out, _ = runs
    run = out / "multi_worker_resumed"
    argv = ["--data", out / "data.npz", "--output", run, *OPTIONS]
    # Both workers killed with SIGKILL as soon as the chief has recorded epoch 2.
    run_workers(argv, out, "crash", (-9, -9), kill_when=lambda: epochs_recorded(run) >= 2)
    done = epochs_recorded(run)
    assert 2 <= done < 4 and not (run / "model.keras").exists()
    chief, _ = run_workers(["--resume", run], out, "resume")
    assert f"resuming {run} after epoch {done}" in chief
    assert_same_run(run, out / "default")


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "--strategy multi-worker needs TF_CONFIG"),
        ("{cluster", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG has no cluster with a 'worker'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "TF_CONFIG has no task"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
            "TF_CONFIG's task worker 1 is not in its cluster (worker: 1)",
        ),
        (
            '{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}',
            "TF_CONFIG's cluster job 'worker' must be a list of 'host:port' strings",
        ),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": "0"}}',
            "TF_CONFIG's task must be {'type': a job name, 'index': an integer}",
        ),
    ],
    ids=["missing", "not-json", "no-cluster", "no-task", "task-outside", "job-text", "index-text"],
)
def test_bad_tf_config_is_a_one_line_error(tf_config, message, tmp_path, monkeypatch, capsys):
    from tf_gradrnn import cli

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    write_data(tmp_path / "data.npz")
    argv = ["train", "--data", str(tmp_path / "data.npz"), "--output", str(tmp_path / "run")]
    assert cli.main([*argv, "--strategy", "multi-worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tf-gradrnn train: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    run_mirrored(Path(sys.argv[1]), Path(sys.argv[2]))
