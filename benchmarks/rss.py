"""The resident memory (RSS) of this process, from Linux's /proc: the one reader that
benchmarks/memory.py and the memory tests (tests/test_memory.py, tests/test_cli_hostile_inputs.py)
share. The tests find it because pyproject.toml puts benchmarks/ on pytest's import path."""


def resident_mb(field: str = "VmRSS") -> float:
    """`VmRSS` (now) or `VmHWM` (the peak) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Resets the peak RSS (VmHWM) to the current RSS; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False
