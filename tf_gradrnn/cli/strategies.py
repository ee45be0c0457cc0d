"""Distribution strategies by name for `tf-gradrnn train --strategy`, and `TF_CONFIG` checks."""

import json
import os

import tensorflow as tf

from tf_gradrnn.cli.options import STRATEGIES


class ClusterError(ValueError):
    """`TF_CONFIG` is missing or does not describe this process' place in a cluster."""


def read_tf_config() -> dict:
    """The `TF_CONFIG` environment variable, checked: a cluster with workers, and this task.

    `{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker",
    "index": 0}}`, optionally with a `"chief"` job of one task.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ClusterError(
            "--strategy multi-worker needs TF_CONFIG, the cluster and this worker's place in "
            'it, e.g. TF_CONFIG=\'{"cluster": {"worker": ["10.0.0.1:12345", '
            '"10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ClusterError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster.get("worker"):
        raise ClusterError("TF_CONFIG has no cluster with a 'worker' list of host:port")
    for job, hosts in cluster.items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise ClusterError(
                f"TF_CONFIG's cluster job {job!r} must be a list of 'host:port' strings, "
                f"got {hosts!r}"
            )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterError("TF_CONFIG has no task {'type': ..., 'index': ...} for this process")
    if not isinstance(task["type"], str) or type(task["index"]) is not int:
        raise ClusterError(
            f"TF_CONFIG's task must be {{'type': a job name, 'index': an integer}}, got {task!r}"
        )
    tasks = cluster.get(task["type"])
    if tasks is None or not 0 <= task["index"] < len(tasks):
        raise ClusterError(
            f"TF_CONFIG's task {task['type']} {task['index']} is not in its cluster "
            f"({', '.join(f'{job}: {len(hosts)}' for job, hosts in cluster.items())})"
        )
    return config


def strategy_from_name(name: str) -> tf.distribute.Strategy:
    """`default`: no distribution; `mirrored`: every GPU of this machine, or without GPUs
    every logical CPU device (one unless configured); `multi-worker`: the cluster in
    `TF_CONFIG` (checked first, see `read_tf_config`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi-worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the results: always, except for the workers of a
    multi-worker cluster other than its chief (the `chief` task, else worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
