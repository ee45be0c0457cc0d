"""Round trips: `get_config` -> `from_config`, `.keras` save -> `load_model` (no custom_objects
for the package's classes, `custom_objects=` for a user's unregistered network), and SavedModel
export -> reload in a process that does not import tf_gradrnn."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import GradientRNN, GradientRNNCell, HamiltonianCell, HamiltonianRNN

FEATURES, UNITS = 3, 4
PUBLIC_LAYERS = (GradientRNN, GradientRNNCell, HamiltonianCell, HamiltonianRNN)


def sequences(dtype="float32", features=FEATURES):
    return np.random.default_rng(0).standard_normal((2, 6, features)).astype(dtype)


def round_trip(model, tmp_path, name="model", **load_options):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return keras.saving.load_model(path, **load_options)


def test_registered_names_are_stable():
    for cls in (*PUBLIC_LAYERS, tf_gradrnn.MLPPotential):
        assert keras.saving.get_registered_name(cls) == f"tf_gradrnn>{cls.__name__}"


# ---- configs ----


def test_cell_config_round_trip():
    cell = GradientRNNCell(
        UNITS,
        hidden_units=(5, 7),
        activation="softplus",
        state_bound=1.5,
        second_order=False,
        state_gradient="tape",
        name="c",
        dtype="float64",
    )
    clone = GradientRNNCell.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    assert (clone.units, clone.hidden_units, clone.name, clone.state_bound) == (
        UNITS,
        (5, 7),
        "c",
        1.5,
    )
    assert clone.potential.hidden_units == (5, 7) and clone.compute_dtype == "float64"


def test_layer_config_round_trip():
    layer = GradientRNN(
        UNITS,
        hidden_units=(5,),
        activation="sigmoid",
        state_bound=2.5,
        state_gradient="tape",
        checkpoint_every=25,
        return_sequences=True,
        go_backwards=True,
        unroll=True,
    )
    config = layer.get_config()
    assert "cell" not in config
    json.dumps(config)  # plain Python values only
    clone = GradientRNN.from_config(config)
    assert clone.get_config() == config
    assert clone.go_backwards and clone.return_sequences and clone.unroll
    assert clone.activation is keras.activations.sigmoid
    assert (clone.state_bound, clone.state_gradient, clone.checkpoint_every) == (2.5, "tape", 25)


def test_numpy_arguments_give_a_plain_config():
    layer = GradientRNN(np.int64(3), hidden_units=np.array([4]), state_bound=np.float32(0.5))
    config = layer.get_config()
    assert json.loads(json.dumps(config))["units"] == 3
    assert (config["hidden_units"], config["state_bound"]) == ([4], 0.5)


def test_potential_config_round_trip():
    potential = tf_gradrnn.MLPPotential((3, 2), activation="gelu", name="f")
    clone = tf_gradrnn.MLPPotential.from_config(potential.get_config())
    assert clone.get_config() == potential.get_config()


def test_hamiltonian_config_round_trips():
    layer = HamiltonianRNN(
        3, hidden_units=(4,), dt=0.05, integrator="symplectic_euler", substeps=3, observe="qp"
    )
    config = layer.get_config()
    assert "cell" not in config
    clone = HamiltonianRNN.from_config(config)
    assert clone.get_config() == config
    assert (clone.dt, clone.substeps, clone.observe) == (0.05, 3, "qp")
    cell = HamiltonianCell(2, hamiltonian=tf_gradrnn.MLPPotential((3,)), control=True)
    assert HamiltonianCell.from_config(cell.get_config()).get_config() == cell.get_config()


# ---- .keras files ----


def test_keras_file_round_trip_with_default_potential(tmp_path):
    inputs = keras.Input((None, FEATURES))
    layer = GradientRNN(UNITS, hidden_units=(8, 8), state_bound=2.5, return_sequences=True)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="adam", loss="mse")
    model.fit(sequences(), np.zeros((2, 6, 1)), epochs=1, verbose=0)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(
        loaded.predict(sequences(), verbose=0), model.predict(sequences(), verbose=0)
    )
    assert isinstance(loaded.layers[-1], GradientRNN) and loaded.layers[-1].state_bound == 2.5


@pytest.mark.parametrize("kind", ["sequential", "mlp_potential"])
def test_keras_file_round_trip_with_user_potential(tmp_path, kind):
    if kind == "sequential":
        potential = keras.Sequential(
            [
                keras.layers.Dense(6, activation="softplus"),
                keras.layers.LayerNormalization(),
                keras.layers.Dense(1),
            ],
            name="user_potential",
        )
    else:
        potential = tf_gradrnn.MLPPotential(
            (6,), activation="silu", bias_initializer="ones", name="user_potential"
        )
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), GradientRNN(UNITS, potential=potential)]
    )
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))
    assert loaded.layers[-1].potential.name == "user_potential"
    assert loaded.layers[-1].get_config()["potential"] is not None


def test_keras_file_round_trip_bidirectional_float64(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES), dtype="float64"),
            keras.layers.Bidirectional(
                GradientRNN(UNITS, hidden_units=(5,), dtype="float64"), dtype="float64"
            ),
        ]
    )
    loaded = round_trip(model, tmp_path)
    x = sequences("float64")
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded(x).dtype == "float64"


def test_bare_cell_in_keras_rnn_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            keras.layers.RNN(GradientRNNCell(UNITS, hidden_units=(5,))),
        ]
    )
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))


def hamiltonian_model(layer, d=2):
    x, q0, p0 = keras.Input((None, 1)), keras.Input((d,)), keras.Input((d,))
    return keras.Model([x, q0, p0], layer(x, initial_state=[q0, p0]))


@pytest.mark.parametrize("user_hamiltonian", [False, True], ids=["default", "user"])
def test_hamiltonian_keras_file_round_trip(user_hamiltonian, tmp_path):
    hamiltonian = tf_gradrnn.MLPPotential((6,), activation="softplus") if user_hamiltonian else None
    layer = HamiltonianRNN(
        2, hidden_units=(6,), hamiltonian=hamiltonian, control=True, return_sequences=True
    )
    inner = keras.layers.RNN(HamiltonianCell(2, hidden_units=(5,), observe="qp"))
    rng = np.random.default_rng(3)
    inputs = [sequences(features=1), *rng.standard_normal((2, 2, 2)).astype("float32")]
    for i, model in enumerate([hamiltonian_model(layer), hamiltonian_model(inner)]):
        loaded = round_trip(model, tmp_path, str(i))
        np.testing.assert_array_equal(model(inputs).numpy(), loaded(inputs).numpy())


# ---- a user's network that is not registered with Keras ----


class Unregistered(keras.layers.Layer):
    """F(z) = sum(w * tanh(z)), a user's network that Keras knows by no registered name."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, z):
        return tf.reduce_sum(self.w * tf.tanh(z), axis=-1, keepdims=True)


@pytest.mark.parametrize("cls", [GradientRNN, HamiltonianRNN, GradientRNNCell, HamiltonianCell])
def test_from_config_passes_custom_objects_on(cls):
    network = "potential" if cls in (GradientRNN, GradientRNNCell) else "hamiltonian"
    config = cls(2, **{network: Unregistered(name="mine")}).get_config()
    with pytest.raises(TypeError, match="Unregistered"):
        cls.from_config(config)
    clone = cls.from_config(config, custom_objects={"Unregistered": Unregistered})
    assert isinstance(getattr(clone, network), Unregistered)
    assert getattr(clone, network).name == "mine"


def test_keras_file_with_an_unregistered_potential_loads_with_custom_objects(tmp_path):
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), GradientRNN(UNITS, potential=Unregistered())]
    )
    model.layers[-1].potential.w.assign(np.linspace(0.5, 1.5, FEATURES + UNITS))
    loaded = round_trip(model, tmp_path, custom_objects={"Unregistered": Unregistered})
    assert isinstance(loaded.layers[-1].potential, Unregistered)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))


# ---- SavedModel ----


def test_hamiltonian_saved_model_reloads_without_the_package(tmp_path):
    layer = HamiltonianRNN(2, hidden_units=(5, 4), control=True, return_sequences=True)
    layer.build((None, None, 1))
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint(
        "serve",
        lambda x, q0, p0: layer(x, initial_state=[q0, p0]),
        input_signature=[
            tf.TensorSpec((None, None, 1), tf.float32),
            tf.TensorSpec((None, 2), tf.float32),
            tf.TensorSpec((None, 2), tf.float32),
        ],
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    rng = np.random.default_rng(4)
    x, q0, p0 = sequences(features=1), *rng.standard_normal((2, 2, 2)).astype("float32")
    np.savez(tmp_path / "inputs.npz", x=x, q0=q0, p0=p0)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(tmp_path / "export")!r})
        inputs = np.load({str(tmp_path / "inputs.npz")!r})
        y = loaded.serve(*(tf.constant(inputs[k]) for k in ("x", "q0", "p0")))
        assert "tf_gradrnn" not in sys.modules
        print(json.dumps(y.numpy().tolist()))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    y = json.loads(result.stdout.strip().splitlines()[-1])
    expected = layer(x, initial_state=[q0, p0]).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
