"""`distributed_fit`: `model.fit` for a model created in any `tf.distribute` strategy's scope.

Keras 3.15's `model.fit` trains under `MirroredStrategy` but fails under
`MultiWorkerMirroredStrategy` before the first step (keras-team/keras#20585:
`strategy.reduce` of the first batch, then of scalar metrics along axis 0). `distributed_fit`
is the training loop `fit` runs, written with public APIs only: `strategy.run` of the
model's own `train_step` and `test_step`, and Keras callbacks driven by a `CallbackList`, so
the same callbacks (checkpoints, early stopping, `NonFiniteGuard`) work under any strategy.
"""

import numbers

import keras
import tensorflow as tf


def _count(value, name: str, minimum: int) -> int:
    """`value` as an int >= minimum (NumPy integers too, bools not), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"distributed_fit: {name} must be {kind} integer, got {value!r}")
    return int(value)


def _distribute(strategy, dataset: tf.data.Dataset):
    # Every worker reads the same batches and keeps its replicas' share of each, so a
    # global batch means the same sequences as on one device.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _clipping(optimizer):
    """The optimizer that clips (a `LossScaleOptimizer`'s inner one), or None."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    names = ("global_clipnorm", "clipnorm", "clipvalue")
    return optimizer if any(getattr(optimizer, name, None) for name in names) else None


def _clipped(optimizer, gradients: list) -> list:
    """`gradients` clipped as the optimizer's `global_clipnorm`, `clipnorm` or `clipvalue`
    clip them."""
    if optimizer.global_clipnorm:
        return tf.clip_by_global_norm(gradients, optimizer.global_clipnorm)[0]
    if optimizer.clipnorm:
        return [tf.clip_by_norm(g, optimizer.clipnorm) for g in gradients]
    return [tf.clip_by_value(g, -optimizer.clipvalue, optimizer.clipvalue) for g in gradients]


def _clip_the_sum(optimizer, clipping, gradients: list, replicas: int) -> list:
    """This replica's gradients replaced by 1/replicas of the clipped sum over the replicas.

    Keras 3.15 clips each replica's share of the gradient before summing them, so a clipped
    step differs from one device's. The sum is clipped here instead, unscaled first if the
    loss was scaled (mixed precision), and what the optimizer then receives is small enough
    that its own clipping leaves it alone: summed again over the replicas, it is the clipped
    sum. Variables without a gradient keep None.
    """
    present = [i for i, g in enumerate(gradients) if g is not None]
    dense = [tf.convert_to_tensor(gradients[i]) for i in present]  # IndexedSlices too
    total = tf.distribute.get_replica_context().all_reduce("SUM", dense)
    scale = optimizer.scale_loss(tf.constant(1.0, total[0].dtype))  # 1 without loss scaling
    clipped = _clipped(clipping, [g / scale for g in total])
    result = list(gradients)
    for i, g in zip(present, clipped, strict=True):
        result[i] = g * scale / replicas
    return result


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
    falls. An epoch's `loss` (and `val_loss`) is the batches' mean weighted by their sizes,
    as in `fit`. A loss-scaling optimizer (mixed precision) gets the scaled loss, as in `fit`.

    Differences from `fit`: `dataset` and `validation_data` must be `tf.data.Dataset`s of
    batches; only the loss is logged (compiled metrics are not computed); and XLA is not
    used (`jit_compile` is ignored: one XLA computation cannot span the replicas' devices).

    Returns:
        The `History`, as `fit` returns it.

    Raises:
        ValueError: if `epochs` or `steps_per_epoch` is not a positive integer, `initial_epoch`
            not an integer in `0..epochs`, or `verbose` not `"auto"`, 0, 1 or 2.
        TypeError: if a dataset is not a `tf.data.Dataset`, or a callback not a Keras one.
    """
    epochs = _count(epochs, "epochs", 1)
    steps_per_epoch = _count(steps_per_epoch, "steps_per_epoch", 1)
    initial_epoch = _count(initial_epoch, "initial_epoch", 0)
    if initial_epoch > epochs:
        raise ValueError(
            f"distributed_fit: initial_epoch ({initial_epoch}) is past epochs ({epochs}); as in "
            "fit, epochs is the index of the last epoch, not a number of further epochs"
        )
    if verbose == "auto":
        verbose = 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f'distributed_fit: verbose must be "auto", 0, 1 or 2, got {verbose!r}')
    callbacks = keras.tree.flatten(callbacks) if callbacks else []  # one callback, as fit
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                "distributed_fit: callbacks must be keras.callbacks.Callback instances, got "
                f"{type(callback).__name__}"
            )
    if not model.built or not model.trainable_variables:
        raise ValueError(
            "distributed_fit needs a built model with trainable weights: start it with "
            "keras.Input(...) or call it once on a batch, in the strategy's scope"
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError("distributed_fit needs a compiled model: call model.compile first")
    for name, data in (("dataset", dataset), ("validation_data", validation_data)):
        if data is not None and not isinstance(data, tf.data.Dataset):
            raise TypeError(
                f"distributed_fit takes {name} as a tf.data.Dataset of (x, y[, sample_weight]) "
                f"batches, got {type(data).__name__}; e.g. "
                "tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)"
            )
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

    optimizer = model.optimizer
    clipping = _clipping(optimizer)

    def replica_train_step(batch):
        with tf.GradientTape() as tape:
            loss, size = replica_loss(batch, training=True)
            scaled = optimizer.scale_loss(loss)  # mixed precision; the optimizer unscales
        gradients = tape.gradient(scaled, variables)
        replicas = strategy.num_replicas_in_sync
        if replicas > 1 and clipping is not None:
            gradients = _clip_the_sum(optimizer, clipping, gradients, replicas)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
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
        callbacks,
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
            callback_list.on_test_begin()
            pairs = []
            for step, batch in enumerate(validation_data):
                callback_list.on_test_batch_begin(step)
                loss, size = test_step(batch)
                pairs.append((float(loss), int(size)))
                callback_list.on_test_batch_end(step, {"loss": mean_loss(pairs)})
            logs["val_loss"] = mean_loss(pairs)
            callback_list.on_test_end({"loss": logs["val_loss"]})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history
