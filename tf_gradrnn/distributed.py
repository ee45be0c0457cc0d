"""Training under `tf.distribute`: the strategies by name, and a `fit` for several workers.

Keras 3.15's `model.fit` trains under `MirroredStrategy` but fails under
`MultiWorkerMirroredStrategy` before the first step (keras-team/keras#20585:
`strategy.reduce` of the first batch, then of scalar metrics along axis 0). `distributed_fit`
is the training loop `fit` runs, written with public APIs only: `strategy.run` of the
model's own `train_step` and `test_step`, and Keras callbacks driven by a `CallbackList`, so
the same callbacks (checkpoints, early stopping, `NonFiniteGuard`) work under any strategy.
"""

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


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
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterError("TF_CONFIG has no task {'type': ..., 'index': ...} for this process")
    tasks = cluster.get(task["type"])
    if not isinstance(tasks, list) or not 0 <= task["index"] < len(tasks):
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


def _distribute(strategy, dataset: tf.data.Dataset):
    # Every worker reads the same batches and keeps its replicas' share of each, so a
    # global batch means the same sequences as on one device.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _clips(optimizer) -> bool:
    return any(
        getattr(optimizer, name, None) for name in ("global_clipnorm", "clipnorm", "clipvalue")
    )


def _clipped(optimizer, gradients: list) -> list:
    """`gradients` clipped as the optimizer's `global_clipnorm`, `clipnorm` or `clipvalue`
    clip them."""
    if optimizer.global_clipnorm:
        return tf.clip_by_global_norm(gradients, optimizer.global_clipnorm)[0]
    if optimizer.clipnorm:
        return [tf.clip_by_norm(g, optimizer.clipnorm) for g in gradients]
    return [tf.clip_by_value(g, -optimizer.clipvalue, optimizer.clipvalue) for g in gradients]


def distributed_fit(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    epochs: int,
    steps_per_epoch: int,
    initial_epoch: int = 0,
    validation_data: tf.data.Dataset | None = None,
    callbacks=(),
    verbose: int = 1,
) -> keras.callbacks.History:
    """`model.fit(dataset, ...)` under the strategy the model was created in, for every
    strategy including `MultiWorkerMirroredStrategy`, where Keras 3.15's `fit` fails.

    Each step splits a global batch of `dataset` (`tf.data` of `(x, y[, sample_weight])`
    global batches, `epochs - initial_epoch` epochs of `steps_per_epoch` batches one after
    the other) over the replicas; each replica computes `model.compute_loss` on its share
    and its gradient, and the optimizer applies the gradients summed over the replicas, as
    `fit` does; gradient clipping set in the optimizer applies to that sum (Keras 3.15's
    `fit` clips each replica's share instead). The loss logged for a batch is the
    replicas' losses summed, which is the loss whose gradient was applied; with
    `MaskedMeanSquaredError` that is the global batch's loss exactly, however the padding
    falls. An epoch's `loss` (and `val_loss`) is
    the batches' mean weighted by their sizes, as in `fit`.

    Differences from `fit`: only the loss is logged (compiled metrics are not computed),
    and XLA is not used (`jit_compile` is ignored: one XLA computation cannot span the
    replicas' devices).

    Returns:
        The `History`, as `fit` returns it.
    """
    strategy = model.distribute_strategy
    variables = model.trainable_variables
    if not model.optimizer.built:
        with strategy.scope():  # optimizer variables created in a replica would not mirror
            model.optimizer.build(variables)

    def replica_loss(batch, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = model(x, training=training)
        loss = model.compute_loss(x, y, y_pred, sample_weight, training=training)
        return loss, tf.shape(tf.nest.flatten(x)[0])[0]

    def replica_train_step(batch):
        with tf.GradientTape() as tape:
            loss, size = replica_loss(batch, training=True)
        gradients = tape.gradient(loss, variables)
        replicas = strategy.num_replicas_in_sync
        if replicas > 1 and _clips(model.optimizer):
            # Keras 3.15 clips each replica's share of the gradient before summing them, so
            # a clipped step differs from one device's. Clip the sum here, and hand the
            # optimizer 1/replicas of it, which its own clipping leaves alone.
            total = tf.distribute.get_replica_context().all_reduce("SUM", gradients)
            gradients = [g / replicas for g in _clipped(model.optimizer, total)]
        model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss, size

    def summed(step):
        @tf.function(reduce_retracing=True)  # the last batch may be smaller
        def run(batch):
            loss, size = strategy.run(step, args=(batch,))
            return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", size, None)

        return run

    train_step = summed(replica_train_step)
    test_step = summed(lambda batch: replica_loss(batch, training=False))

    def mean_loss(pairs):
        return sum(loss * size for loss, size in pairs) / max(sum(s for _, s in pairs), 1)

    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    batches = iter(_distribute(strategy, dataset))
    if validation_data is not None:
        validation_data = _distribute(strategy, validation_data)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        seen = []
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            batch = next(batches, None)
            if batch is None:
                raise ValueError(
                    f"the dataset ended in epoch {epoch + 1} after {step} of its "
                    f"{steps_per_epoch} batches; distributed_fit reads "
                    f"(epochs - initial_epoch) * steps_per_epoch = "
                    f"{(epochs - initial_epoch) * steps_per_epoch} batches in all "
                    "(use dataset.repeat())"
                )
            loss, size = train_step(batch)
            seen.append((float(loss), int(size)))
            callback_list.on_train_batch_end(step, {"loss": mean_loss(seen)})
            if model.stop_training:
                break
        logs = {"loss": mean_loss(seen)}
        if validation_data is not None:
            pairs = [test_step(batch) for batch in validation_data]
            logs["val_loss"] = mean_loss([(float(loss), int(size)) for loss, size in pairs])
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history
