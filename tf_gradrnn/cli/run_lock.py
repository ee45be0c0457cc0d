"""An exclusive lock on a run folder, so that two processes never train one run at once."""

import contextlib
import fcntl
import os
from pathlib import Path

from tf_gradrnn.cli.run_folder import LOCK, RunError


@contextlib.contextmanager
def locked(run_dir: Path):
    """Holds an exclusive lock on the existing folder `run_dir` (`RUN/.lock`, deleted on
    release); raises RunError if another process holds it.

    The lock is an `flock`, which the kernel releases when its process ends, however it
    ends: a lock file left by a killed process does not lock anything.
    """
    path = run_dir / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunError(f"cannot lock the run folder {run_dir}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(
                f"{run_dir} is in use by another tf-gradrnn process (it holds {path}); wait "
                "for it to end"
            ) from None
        # The holder before us may have deleted the file we locked: lock the one in place.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # before unlocking: no one can lock this file once it is gone
        os.close(fd)
