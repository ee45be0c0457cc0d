"""Running a few test processes at once, each bounded in time and cleaned up on failure."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def run_processes(commands, envs, logs: list[Path], timeout: float, kill_when=None) -> list[int]:
    """Runs the commands at once, each in its own process group, and returns their exit codes.

    A process that fails stops the others (a peer left alone could wait forever for it); at
    the timeout all are killed. Each process's output goes to its file in `logs`. With
    `kill_when`, a function polled while they run, all are killed with SIGKILL (exit code -9)
    once it returns True: a crash at a point of the test's choosing, with no hook in the code.
    """
    procs = []
    with contextlib.ExitStack() as stack:
        try:
            for command, env, log_path in zip(commands, envs, logs, strict=True):
                log = stack.enter_context(open(log_path, "w"))
                procs.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                codes = [proc.poll() for proc in procs]
                if all(code is not None for code in codes) or any(codes):
                    break
                if kill_when is not None and kill_when():
                    break
                time.sleep(0.05 if kill_when else 0.2)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return [proc.returncode for proc in procs]


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on 127.0.0.1 that were free a moment ago, for a local cluster."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
