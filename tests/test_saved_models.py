"""The committed SavedModel gives the answers that saved_models/README.md promises."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_gradrnn.serving import serve_rest

SAVED = Path(__file__).resolve().parents[1] / "saved_models"


@pytest.fixture(scope="module")
def committed_model():
    return tf.saved_model.load(str(SAVED / "gradient_rnn" / "1"))


def assert_same_answer(actual, expected):
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            assert_same_answer(actual[key], expected[key])
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_same_answer(a, e)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["sequence", "step"])
def test_committed_model_answers_as_documented(committed_model, name):
    body = json.loads((SAVED / "requests" / f"{name}.json").read_text())
    expected = json.loads((SAVED / "requests" / f"{name}.expected.json").read_text())
    assert_same_answer(serve_rest(committed_model, body), expected)
    readme = (SAVED / "README.md").read_text()
    assert json.dumps(body) in readme
    assert json.dumps(expected) in readme
    assert f"@saved_models/requests/{name}.json" in readme


def test_committed_model_declares_its_input_shapes(committed_model):
    # As saved_models/README.md says; a model exported before shapes were declared fails here.
    declared = {
        name: {
            key: tuple(spec.shape) for key, spec in function.structured_input_signature[1].items()
        }
        for name, function in committed_model.signatures.items()
    }
    assert declared == {
        "serving_default": {"x": (None, None, 3)},
        "sequence": {"x": (None, None, 3), "h0": (None, 4)},
        "step": {"x_t": (None, 3), "h": (None, 4)},
    }


def test_committed_model_is_small_and_complete():
    version = SAVED / "gradient_rnn" / "1"
    files = [p for p in version.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 500_000
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
