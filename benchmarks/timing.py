"""Interleaved timing: several callables timed in rounds, in a rotated order, in one process."""

import time
from collections.abc import Callable

import numpy as np


def interleave(
    calls: dict[str, Callable[[], object]],
    rounds: int,
    per_round: int,
    warmup: int,
    batches: dict[str, int] | None = None,
) -> dict[str, list[float]]:
    """{label: ms per batch of every timed call}.

    Each callable runs `warmup` untimed times, then `rounds` rounds of `per_round` timed calls;
    round r starts with the (r mod n)-th callable, so that a slow spell of the machine falls on
    all of them alike. A call that processes several batches (`batches[label]`) counts its
    time per batch. Each callable must return only once its work is complete (a NumPy value).
    """
    batches = batches or {}
    for call in calls.values():
        for _ in range(warmup):
            call()
    labels = list(calls)
    times = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            for _ in range(per_round):
                start = time.perf_counter()
                calls[label]()
                times[label].append(1e3 * (time.perf_counter() - start) / batches.get(label, 1))
    return times


def median(values) -> float:
    return float(np.median(values))


def iqr(values) -> float:
    q25, q75 = np.percentile(values, [25, 75])
    return float(q75 - q25)
