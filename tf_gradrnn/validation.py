"""Argument checks shared by the package's layers: each raises with a message naming the argument,
the value and what was expected.

Numbers may be Python or NumPy scalars (`np.int64(4)`, `np.float32(0.1)`, the elements of a NumPy
array); booleans are refused where a number is expected, although Python counts them as ints.
"""

import math
import numbers
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

_HALF_PRECISION = ("float16", "bfloat16")


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def positive_int(value, name: str) -> int:
    """Returns `value` as an int if it is a positive integer, or raises ValueError."""
    if _is_bool(value) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def positive_ints(values: int | Sequence[int], name: str) -> tuple[int, ...]:
    """Returns `values` (one int, or a non-empty sequence or 1-D array of them) as a tuple of
    positive ints, or raises ValueError."""
    if isinstance(values, numbers.Integral) and not _is_bool(values):
        values = (values,)
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(
            f"{name} must be a sequence of positive integers, got {values!r}."
        ) from None
    if not items:
        raise ValueError(f"{name} must name at least one hidden layer, got an empty sequence ().")
    for item in items:
        if _is_bool(item) or not isinstance(item, numbers.Integral) or item <= 0:
            raise ValueError(f"{name} must be positive integers, got {item!r} in {values!r}.")
    return tuple(int(item) for item in items)


def positive_finite(value, name: str) -> float:
    """Returns `value` as a float if it is a positive finite real number, or raises ValueError."""
    if (
        _is_bool(value)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def one_of(value, choices: Sequence, name: str):
    """Returns `value` if it is one of `choices`, or raises ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")
    return value


def normal_range(value: float, dtype: str, name: str) -> float:
    """Returns `value` if it lies in `dtype`'s range of normal numbers, or raises ValueError.

    A positive float below that range rounds to a subnormal or to 0 in `dtype` (dividing by
    it gives Inf, and NaN gradients); one above it rounds to Inf.
    """
    info = np.finfo(dtype)
    low, high = float(info.tiny), float(info.max)
    if not low <= value <= high:
        raise ValueError(
            f"{name} must lie in {dtype}'s range of normal numbers [{low:.3g}, {high:.3g}] to "
            f"be used in {dtype} computations, got {value!r}."
        )
    return value


def is_mixed_half_precision(policy) -> bool:
    """Whether the dtype `policy` keeps variables in full precision and computes in half."""
    return policy.compute_dtype in _HALF_PRECISION and policy.variable_dtype not in _HALF_PRECISION


def refuse_half_precision(layer: keras.layers.Layer, why: str) -> None:
    """Raises ValueError if `layer` computes in float16 or bfloat16, saying `why` not."""
    if layer.dtype_policy.compute_dtype in _HALF_PRECISION:
        raise ValueError(
            f"{type(layer).__name__} does not support the dtype policy "
            f"'{layer.dtype_policy.name}': {why} Give this layer dtype='float32' (or "
            "'float64'), or a mixed policy such as 'mixed_float16'."
        )


def network(value, name: str) -> keras.layers.Layer:
    """Returns `value` if it is a Keras layer or model, or raises TypeError."""
    if not isinstance(value, keras.layers.Layer):
        raise TypeError(f"{name} must be a Keras layer or model, got {type(value).__name__}.")
    return value


def float_tensor(tensor, owner: str, what: str = "inputs") -> None:
    """Raises TypeError unless `tensor` (a tensor or array) has a floating-point dtype. The
    message starts with `owner` (the class) and `what` (which argument)."""
    dtype = tf.as_dtype(tensor.dtype)
    if not dtype.is_floating:
        raise TypeError(
            f"{owner} {what} must be floating point, got dtype {dtype.name}. Cast them, e.g. "
            "x.astype('float32')."
        )


def sequence_mask(mask, sequences, owner: str):
    """`mask` as a `(batch, time)` boolean tensor for `sequences: (batch, time, features)`.

    Booleans and 0/1 numbers are accepted (nonzero is a real step). The shape must equal the
    sequences' first two dimensions, without broadcasting: a `(1, time)` mask for a batch of
    more sequences is a mistake, not a shared mask. Raises TypeError or ValueError naming the
    mask and the expected shape when the shapes are known; when one is only known at run time
    (a `tf.function` over unknown batch or time sizes), a run-time assertion checks it. XLA
    (`jit_compile=True`) drops run-time assertions, so compiled code is not checked there.
    """
    mask = tf.convert_to_tensor(mask)
    batch, steps = (
        d if d is not None else name
        for d, name in zip(sequences.shape[:2], ("batch", "time"), strict=True)
    )
    expected = f"(batch, time) = ({batch}, {steps})"
    if not (mask.dtype.is_bool or mask.dtype.is_integer or mask.dtype.is_floating):
        raise TypeError(
            f"{owner} mask must be boolean (or 0/1 numbers) of shape {expected}, got dtype "
            f"{mask.dtype.name}."
        )
    if mask.shape.rank != 2:
        raise ValueError(
            f"{owner} mask must have shape {expected}, one entry per time step of each "
            f"sequence; got shape {tuple(mask.shape)}."
        )
    known = [
        (m, s)
        for m, s in zip(mask.shape, sequences.shape[:2], strict=True)
        if m is not None and s is not None
    ]
    if any(m != s for m, s in known):
        raise ValueError(
            f"{owner} mask must have shape {expected}, one entry per time step of each "
            f"sequence; got shape {tuple(mask.shape)}."
        )
    if len(known) < 2:
        same = tf.debugging.assert_equal(
            tf.shape(mask),
            tf.shape(sequences)[:2],
            message=f"{owner} mask must have the shape (batch, time) of the inputs",
        )
        with tf.control_dependencies([same]):
            mask = tf.identity(mask)
    return tf.cast(mask, tf.bool)


def initial_states(initial_state, sequences, name: str, names, sizes) -> list:
    """`initial_state` (one tensor, or a list of one per state) as a list of tensors, after
    checking it against the states `names` of `sizes` and the batch size of `sequences`: one
    floating-point `(batch, size)` tensor per state, asserted at run time when a batch size is
    only known then. Raises with a message starting with `name` (the layer's class)."""
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    if len(states) != len(sizes):
        shapes = ", ".join(f"(batch, {size})" for size in sizes)
        expected = (
            f"has one state, so initial_state must be one tensor {shapes}"
            if len(sizes) == 1
            else f"has {len(sizes)} states [{', '.join(names)}], so initial_state must be "
            f"a list [{', '.join(n + '0' for n in names)}] of tensors {shapes}"
        )
        got = f"{len(states)} tensor" + ("" if len(states) == 1 else "s")
        raise ValueError(f"{name} {expected}; got {got}.")
    checked = []
    for state_name, state, size in zip(names, states, sizes, strict=True):
        what = "initial_state" if len(sizes) == 1 else f"initial_state {state_name}0"
        state = tf.convert_to_tensor(state)
        float_tensor(state, name, what)
        if state.shape.rank != 2 or state.shape[-1] != size:
            raise ValueError(
                f"{name} {what} must have shape (batch, {size}), got {tuple(state.shape)}."
            )
        batch, state_batch = sequences.shape[0], state.shape[0]
        if batch is not None and state_batch is not None:
            if batch != state_batch:
                raise ValueError(
                    f"{name} {what} has batch size {state_batch} but the inputs have batch "
                    f"size {batch}; give one initial state per sequence."
                )
        else:
            same = tf.debugging.assert_equal(
                tf.shape(state)[0],
                tf.shape(sequences)[0],
                message=f"{name} {what} has another batch size than the inputs; give one "
                "initial state per sequence",
            )
            with tf.control_dependencies([same]):
                state = tf.identity(state)
        checked.append(state)
    return checked
