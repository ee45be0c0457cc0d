"""A training process killed with SIGKILL mid-epoch resumes from its last backup, and ends with
exactly the weights of an uninterrupted run.

`keras.callbacks.BackupAndRestore` saves the weights, the optimizer state and the epoch number at
the end of every epoch; a restarted `fit` loads them and starts at the next epoch. With a seed,
op determinism and an epoch whose batches do not depend on earlier epochs (`shuffle=False`
here), the batches lost to the kill are recomputed bit for bit.

Run as a script, this file is the training process the test starts and kills:

    python tests/test_crash_safety.py OUT_DIR [--stop-at EPOCH BATCH]

`--stop-at` makes the run write `OUT_DIR/stopped` after that batch (both 0-based) and then
hang there, so that the test can kill it at a known point in the middle of an epoch.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_gradrnn  # noqa: E402

SEED = 7
SAMPLES, STEPS, FEATURES, UNITS = 32, 6, 3, 4
BATCH, EPOCHS = 8, 4  # 4 batches an epoch
STOP_EPOCH, STOP_BATCH = 2, 1  # killed after 2 of the 4 batches of epoch 2 (0-based)
TIMEOUT = 120  # seconds, for each training process


class Journal(keras.callbacks.Callback):
    """Records the epochs a run begins; with `stop_at`, hangs after that batch for a kill."""

    def __init__(self, out: Path, stop_at=None):
        super().__init__()
        self.out, self.stop_at = out, stop_at
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        with open(self.out / "epochs.log", "a") as log:
            log.write(f"{epoch}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_at == (self.epoch, batch):
            (self.out / "stopped").write_text(f"epoch {self.epoch} batch {batch}")
            time.sleep(TIMEOUT)  # bounded, should the test die before killing it


def train(out: Path, stop_at=None):
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, STEPS, FEATURES)).astype("float32")
    y = rng.standard_normal((SAMPLES, STEPS)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((STEPS, FEATURES)),
            tf_gradrnn.GradientRNN(UNITS, hidden_units=(8,), return_sequences=True),
            keras.layers.Reshape((-1,)),
        ]
    )
    # Adam, so that the resumed run is only exact if the optimizer's moments were restored too.
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        Journal(out, stop_at),  # after BackupAndRestore: an epoch is logged once it is saved
    ]
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, callbacks=callbacks, verbose=0)
    np.savez(out / "weights.npz", *model.get_weights())


# ---- the test ----


def start(out: Path, *args) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(out / "process.log", "a") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, __file__, str(out), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )


def kill(proc: subprocess.Popen):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(proc: subprocess.Popen, out: Path, timeout=TIMEOUT) -> int:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        kill(proc)
    assert code == 0, f"exit code {code}:\n" + (out / "process.log").read_text()[-3000:]
    return code


def weights(out: Path):
    with np.load(out / "weights.npz") as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def epochs_begun(out: Path):
    return [int(line) for line in (out / "epochs.log").read_text().split()]


def test_sigkill_mid_epoch_then_restart_resumes_and_ends_like_an_uninterrupted_run(tmp_path):
    crashed, reference = tmp_path / "crashed", tmp_path / "reference"
    victim = start(crashed, "--stop-at", str(STOP_EPOCH), str(STOP_BATCH))
    uninterrupted = start(reference)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (crashed / "stopped").exists():
            assert victim.poll() is None, (crashed / "process.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.1)
        os.killpg(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        kill(victim)

    # Killed in epoch 2: the last backup is the end of epoch 1, and no weights were written.
    assert epochs_begun(crashed) == [0, 1, 2]
    metadata = json.loads((crashed / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == STOP_EPOCH
    assert not (crashed / "weights.npz").exists()

    finish(start(crashed), crashed)  # the same command again, without the kill
    assert epochs_begun(crashed) == [0, 1, 2, 2, 3]  # resumed at the start of epoch 2
    assert not (crashed / "backup").exists()  # deleted once training completed

    finish(uninterrupted, reference)
    assert epochs_begun(reference) == [0, 1, 2, 3]
    for i, (resumed, expected) in enumerate(zip(weights(crashed), weights(reference), strict=True)):
        np.testing.assert_array_equal(resumed, expected, err_msg=f"weight {i}")


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    stop = None
    if "--stop-at" in sys.argv:
        i = sys.argv.index("--stop-at")
        stop = (int(sys.argv[i + 1]), int(sys.argv[i + 2]))
    train(out_dir, stop)
