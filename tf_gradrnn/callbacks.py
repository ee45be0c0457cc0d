"""Training callbacks: stop a diverging run with an error that says where it diverged."""

import math

import keras


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, with an error naming the epoch and batch.

    A state h_t = dF/dh can grow without bound (the recurrence's Jacobian is the Hessian of F
    in h) until y or h overflow, and every weight becomes NaN after the next update. This
    callback checks the loss after every batch; at the first NaN or Inf it restores the model
    as it was when the epoch began and raises `FloatingPointError`, so a run never goes on
    silently with NaN weights. Keras' own `TerminateOnNaN` stops without an error and leaves
    the NaN weights in the model.

    Restored are the model's weights and the optimizer's variables (Adam's moments, the step
    count, a loss scale): the NaN update reached those too, and a later `fit` from NaN moments
    would make every weight NaN again at its first step. Each epoch's start costs one copy of
    both, in host memory.

    Example:

    ```python
    model.fit(x, y, callbacks=[tf_gradrnn.NonFiniteGuard()])
    ```
    """

    def __init__(self, monitor: str = "loss"):
        super().__init__()
        self.monitor = monitor
        self._epoch = 0
        self._snapshot = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        # `fit` builds the optimizer before the first epoch begins; variables it would create
        # later are not in the snapshot.
        optimizer = getattr(self.model, "optimizer", None)
        variables = [*self.model.weights, *(optimizer.variables if optimizer else ())]
        self._snapshot = [(v, v.numpy()) for v in variables]

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or math.isfinite(float(value)):
            return
        for variable, value_at_start in self._snapshot or ():
            variable.assign(value_at_start)
        raise FloatingPointError(
            f"Training diverged: {self.monitor} is {float(value)} at epoch {self._epoch + 1}, "
            f"batch {batch + 1}. The weights and the optimizer's state were restored to the "
            f"start of epoch {self._epoch + 1}. Bound the state (GradientRNN(..., "
            "state_bound=...)), lower the learning rate, or clip gradients."
        )

    def get_config(self):
        return {"monitor": self.monitor}
