"""Masks: every call form of GradientRNN and HamiltonianRNN honours the inputs' Keras mask, masked
steps keep the state and output what Keras' RNN convention says, and bad masks are refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import hamiltonian_gradient, potential_and_state_gradient

from tf_gradrnn import GradientRNN, GradientRNNCell, HamiltonianRNN

BATCH, STEPS, REAL_STEPS, FEATURES = 3, 6, 4, 3
SIZES = {"gradient": [4], "hamiltonian": [2, 2]}  # the cell's state sizes
DT = 0.1


def make_layer(kind, dtype="float64", **options):
    if kind == "gradient":
        return GradientRNN(4, hidden_units=(5,), dtype=dtype, **options)
    return HamiltonianRNN(2, hidden_units=(5,), control=True, dt=DT, dtype=dtype, **options)


def sequences(steps=STEPS):
    return np.random.default_rng(0).uniform(0.5, 1.5, (BATCH, steps, FEATURES))


def initial_states(kind):
    rng = np.random.default_rng(1)
    return [rng.normal(size=(BATCH, size)) for size in SIZES[kind]]


def with_zero_tail(x):
    """`x` with every step from REAL_STEPS on set to 0, which `Masking(0.0)` masks."""
    x = x.copy()
    x[:, REAL_STEPS:] = 0.0
    return x


class MaskedWithConstantState(keras.Model):
    """A subclassed model: Masking, then the layer with an initial state held as constants."""

    def __init__(self, layer, states, as_list):
        super().__init__()
        self.masking = keras.layers.Masking(0.0, dtype="float64")
        self.layer, self.states, self.as_list = layer, states, as_list

    def call(self, x):
        states = [tf.constant(s) for s in self.states]
        return self.layer(self.masking(x), initial_state=states if self.as_list else states[0])


def masked_model(kind, form):
    """Masking(0.0) -> layer(..., initial_state=...) as a model, the state given as `form`."""
    layer = make_layer(kind, return_sequences=True, return_state=True)
    states = initial_states(kind)
    if form != "keras_input":
        return MaskedWithConstantState(layer, states, as_list=form == "list"), []
    x = keras.Input((None, FEATURES), dtype="float64")
    state_inputs = [keras.Input((s.shape[1],), dtype="float64") for s in states]
    masked = keras.layers.Masking(0.0, dtype="float64")(x)
    given = state_inputs if kind == "hamiltonian" else state_inputs[0]
    return keras.Model([x, *state_inputs], layer(masked, initial_state=given)), states


def run(model, inputs, mode):
    if mode == "eager":
        return [np.asarray(v) for v in model(inputs)]
    model.compile(jit_compile=mode == "jit_compile")
    return model.predict(inputs, verbose=0)


FORMS = [
    ("gradient", "tensor"),
    ("gradient", "list"),
    ("gradient", "keras_input"),
    ("hamiltonian", "list"),
    ("hamiltonian", "keras_input"),
]


@pytest.mark.parametrize("mode", ["eager", "predict", "jit_compile"])
@pytest.mark.parametrize(("kind", "form"), FORMS, ids=[f"{k}-{f}" for k, f in FORMS])
def test_masked_tail_with_initial_state_equals_the_truncated_sequence(kind, form, mode):
    model, states = masked_model(kind, form)
    x = sequences()
    inputs = (lambda x: [x, *states]) if states else (lambda x: x)
    outputs, *final = run(model, inputs(with_zero_tail(x)), mode)
    expected_outputs, *expected_final = run(model, inputs(x[:, :REAL_STEPS]), mode)
    np.testing.assert_allclose(outputs[:, :REAL_STEPS], expected_outputs, rtol=1e-12, atol=1e-12)
    for state, expected in zip(final, expected_final, strict=True):
        np.testing.assert_allclose(state, expected, rtol=1e-12, atol=1e-12)


def nested_call(kind, form):
    """`Masking(0.0)` then the layer inside a Sequential model, a Bidirectional wrapper, or
    behind another layer of the same kind; returns a function of the sequences."""
    masking = keras.layers.Masking(0.0, dtype="float64")
    states = initial_states(kind)
    if form == "sequential":
        x = keras.Input((None, FEATURES), dtype="float64")
        return keras.Sequential([x, masking, make_layer(kind)])
    if form == "bidirectional":
        wrapper = keras.layers.Bidirectional(make_layer(kind), dtype="float64")
        backward = [s[::-1] for s in states]  # a different state for each direction
        return lambda x: wrapper(masking(x), initial_state=states + backward)
    first, second = make_layer(kind, return_sequences=True), make_layer(kind)
    given = states if kind == "hamiltonian" else states[0]
    return lambda x: second(first(masking(x)), initial_state=given)


NESTED = ["sequential", "bidirectional", "stacked"]


@pytest.mark.parametrize("form", NESTED)
@pytest.mark.parametrize("kind", ["gradient", "hamiltonian"])
def test_masked_tail_equals_the_truncated_sequence_in_nested_calls(kind, form):
    call = nested_call(kind, form)
    x = sequences()
    np.testing.assert_allclose(
        call(with_zero_tail(x)), call(x[:, :REAL_STEPS]), rtol=1e-12, atol=1e-12
    )


def test_keras_lstm_with_initial_state_loses_the_mask():
    # Keras 3.15 fills `mask` in only for a call with one tensor argument, so its own LSTM runs
    # the masked steps when given initial_state. Our layers read the inputs' mask themselves
    # (CellRNN._checked_mask). If this starts failing, Keras fixed it and that fallback can go.
    lstm = keras.layers.LSTM(2, dtype="float64")
    masking = keras.layers.Masking(0.0, dtype="float64")
    x, state = sequences(), [np.ones((BATCH, 2)), np.ones((BATCH, 2))]
    masked = lstm(masking(with_zero_tail(x)), initial_state=state)
    truncated = lstm(masking(x[:, :REAL_STEPS]), initial_state=state)
    assert np.max(np.abs(masked - truncated)) > 1e-3
    np.testing.assert_allclose(lstm(masking(with_zero_tail(x))), lstm(x[:, :REAL_STEPS]))


# An independent NumPy model of masked sequences, Keras' convention: a masked step keeps the
# state; its output repeats the last real step's output, zeros before the first real step
# (zero_output_for_mask=False, the default), or is zeros (zero_output_for_mask=True).


def gradient_step(weights, x, states):
    y, h = potential_and_state_gradient(weights, x, states[0])
    return y[:, None], [h]


def leapfrog_step(weights, x, states):
    """One leapfrog step of size DT with one fixed-point sweep, as HamiltonianCell's."""
    q, p = states
    middle = p - DT / 2 * hamiltonian_gradient(weights, q, p, x)[0]
    h_p = hamiltonian_gradient(weights, q, middle, x)[1]
    q_next = q + DT * h_p
    q_next = q + DT / 2 * (h_p + hamiltonian_gradient(weights, q_next, middle, x)[1])
    p_next = middle - DT / 2 * hamiltonian_gradient(weights, q_next, middle, x)[0]
    return q_next, [q_next, p_next]


def masked_reference(step, x, states, mask, zero_output_for_mask):
    outputs, previous = [], None
    for t in range(x.shape[1]):
        y, new_states = step(x[:, t], states)
        keep = mask[:, t, None]
        states = [np.where(keep, n, s) for n, s in zip(new_states, states, strict=True)]
        held = np.zeros_like(y) if zero_output_for_mask or previous is None else previous
        previous = np.where(keep, y, held)
        outputs.append(previous)
    return np.stack(outputs, axis=1), states


MASK = np.array(
    [
        [False, False, True, True, False, True],  # masked steps before the first real step
        [True, True, True, False, False, False],
        [False, False, False, False, False, False],  # no real step: the initial state stays
    ]
)


@pytest.mark.parametrize("zero_output_for_mask", [False, True], ids=["repeat_output", "zeros"])
@pytest.mark.parametrize("kind", ["gradient", "hamiltonian"])
def test_masked_steps_match_an_independent_numpy_model(kind, zero_output_for_mask):
    layer = make_layer(
        kind,
        return_sequences=True,
        return_state=True,
        zero_output_for_mask=zero_output_for_mask,
    )
    x, states = sequences(), initial_states(kind)
    given = states if kind == "hamiltonian" else states[0]
    outputs, *final = layer(x, initial_state=given, mask=MASK)
    network = layer.cell.potential if kind == "gradient" else layer.cell.hamiltonian
    step = gradient_step if kind == "gradient" else leapfrog_step
    weights = network.get_weights()
    expected, expected_final = masked_reference(
        lambda x, s: step(weights, x, s), x, states, MASK, zero_output_for_mask
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-12, atol=1e-12)
    for state, reference in zip(final, expected_final, strict=True):
        np.testing.assert_allclose(state, reference, rtol=1e-12, atol=1e-12)
    assert not np.any(expected[0, :2])  # the convention under test: zeros before a real step


BAD_MASKS = {
    "rank1": (np.ones(STEPS, bool), ValueError, r"got shape \(6,\)"),
    "string": (np.full((BATCH, STEPS), "yes"), TypeError, "boolean .* got dtype string"),
    "longer": (np.ones((BATCH, STEPS + 1), bool), ValueError, r"got shape \(3, 7\)"),
    "broadcast_batch": (np.ones((1, STEPS), bool), ValueError, r"got shape \(1, 6\)"),
}


@pytest.mark.parametrize("bad", BAD_MASKS.values(), ids=BAD_MASKS.keys())
def test_bad_mask_is_refused_naming_the_expected_shape(bad):
    mask, error, message = bad
    with pytest.raises(error, match=r"GradientRNN mask must .*\(batch, time\) = \(3, 6\)"):
        make_layer("gradient")(sequences(), mask=mask)
    with pytest.raises(error, match=message):
        make_layer("hamiltonian")(sequences(), mask=mask)


def test_mask_of_another_length_is_refused_at_run_time():
    # Traced for unknown batch and time sizes, only a run-time assertion can see the mismatch,
    # which Keras' loop would otherwise truncate silently.
    layer = make_layer("gradient")
    call = tf.function(
        lambda x, mask: layer(x, mask=mask),
        input_signature=[
            tf.TensorSpec((None, None, FEATURES), tf.float64),
            tf.TensorSpec((None, None), tf.bool),
        ],
    )
    longer = np.ones((BATCH, STEPS + 1), bool)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask must have the shape"):
        call(sequences(), longer)


@pytest.mark.parametrize("inside_rnn", [False, True], ids=["bare_cell", "keras_rnn"])
def test_cell_refuses_a_state_of_another_batch_size(inside_rnn):
    cell = GradientRNNCell(4, hidden_units=(5,), dtype="float64")
    one_state = [np.zeros((1, 4))]
    with pytest.raises(ValueError, match="state h has batch size 1 but the inputs have batch"):
        if inside_rnn:
            keras.layers.RNN(cell, dtype="float64")(sequences(), initial_state=one_state)
        else:
            cell(sequences()[:, 0], one_state)
