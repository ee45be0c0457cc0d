"""Mixed precision as Keras' own RNN layers do it: under a mixed policy every public layer keeps
float32 variables and returns its outputs in the compute dtype; the recurrent cells compute in
float32 inside (their state is fed back at every step). Pure half-precision policies are refused."""

import keras
import numpy as np
import pytest
from public_layers import LAYERS, RECURRENT, as_list, fit_one_batch, inputs, model_of

from tf_gradrnn import GradientRNN, GradientRNNCell, HamiltonianCell, HamiltonianRNN

# Three units in the last place of the compute dtype: its round-off of inputs and outputs.
TOLERANCE = {"mixed_float16": 3 * 2.0**-10, "mixed_bfloat16": 3 * 2.0**-7}


@pytest.fixture(params=list(TOLERANCE))
def policy(request):
    keras.config.set_dtype_policy(request.param)
    yield keras.dtype_policies.get(request.param)
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", list(LAYERS))
def test_trains_with_float32_variables_and_half_precision_outputs(policy, name):
    model, layer = model_of(name)
    x = inputs(name)
    assert {w.dtype for w in layer.weights} == {"float32"}
    outputs = model(x)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    assert {keras.backend.standardize_dtype(o.dtype) for o in outputs} == {policy.compute_dtype}
    loss, before, after = fit_one_batch(model, x)
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", list(LAYERS))
def test_save_and_load_give_the_same_outputs(policy, name, tmp_path):
    model, _ = model_of(name)
    x = inputs(name)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    for expected, actual in zip(as_list(model(x)), as_list(loaded(x)), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("name", list(LAYERS))
def test_mixed_result_equals_the_float32_one_within_half_precision(policy, name):
    mixed, _ = model_of(name)
    keras.config.set_dtype_policy("float32")
    full, _ = model_of(name)
    full.set_weights(mixed.get_weights())
    x = inputs(name)
    for low, high in zip(as_list(mixed(x)), as_list(full(x)), strict=True):
        scale = max(1.0, float(np.max(np.abs(high))))
        np.testing.assert_allclose(low, high, rtol=0, atol=TOLERANCE[policy.name] * scale)


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_cells_compute_in_float32(policy, name):
    _, layer = model_of(name)
    assert layer.cell.compute_dtype == "float32"
    assert layer.compute_dtype == policy.compute_dtype


@pytest.mark.parametrize("state_dtype", ["float32", "compute"])
def test_initial_state_is_accepted_in_either_dtype(policy, state_dtype):
    layer = GradientRNN(3, hidden_units=(4,), return_state=True)
    x = inputs("GradientRNN")
    h0 = np.full((x.shape[0], 3), 0.25, "float32")
    given = keras.ops.cast(h0, policy.compute_dtype if state_dtype == "compute" else "float32")
    y, h = layer(x, initial_state=given)
    assert y.dtype == policy.compute_dtype and h.dtype == policy.compute_dtype
    np.testing.assert_array_equal(as_list(h), as_list(layer(x, initial_state=h0)[1]))


HALF = [
    lambda dtype: GradientRNN(3, dtype=dtype),
    lambda dtype: GradientRNNCell(3, dtype=dtype),
    lambda dtype: HamiltonianRNN(1, dtype=dtype),
    lambda dtype: HamiltonianCell(1, dtype=dtype),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "make", HALF, ids=["GradientRNN", "GradientRNNCell", "HamiltonianRNN", "HamiltonianCell"]
)
def test_pure_half_precision_is_refused(make, dtype):
    with pytest.raises(ValueError, match=f"does not support the dtype policy '{dtype}'.*mixed"):
        make(dtype)
