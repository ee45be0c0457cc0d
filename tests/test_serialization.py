"""Config and `.keras` round trips, with the built-in and with user-supplied potentials."""

import keras
import numpy as np
import pytest

import tf_gradrnn

FEATURES, UNITS = 3, 4


def sequences(dtype="float32"):
    return np.random.default_rng(0).standard_normal((2, 6, FEATURES)).astype(dtype)


def test_registered_names_are_stable():
    for cls in (tf_gradrnn.GradientRNN, tf_gradrnn.GradientRNNCell, tf_gradrnn.MLPPotential):
        assert keras.saving.get_registered_name(cls) == f"tf_gradrnn>{cls.__name__}"


def test_cell_config_round_trip():
    cell = tf_gradrnn.GradientRNNCell(
        UNITS, hidden_units=(5, 7), activation="softplus", name="c", dtype="float64"
    )
    clone = tf_gradrnn.GradientRNNCell.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    assert (clone.units, clone.hidden_units, clone.name) == (UNITS, (5, 7), "c")
    assert clone.potential.hidden_units == (5, 7)
    assert clone.compute_dtype == "float64"


def test_layer_config_round_trip():
    layer = tf_gradrnn.GradientRNN(
        UNITS,
        hidden_units=(5,),
        activation="sigmoid",
        return_sequences=True,
        go_backwards=True,
        unroll=True,
    )
    config = layer.get_config()
    assert "cell" not in config
    clone = tf_gradrnn.GradientRNN.from_config(config)
    assert clone.get_config() == config
    assert clone.go_backwards and clone.return_sequences and clone.unroll
    assert clone.activation is keras.activations.sigmoid


def test_potential_config_round_trip():
    potential = tf_gradrnn.MLPPotential((3, 2), activation="gelu", name="f")
    clone = tf_gradrnn.MLPPotential.from_config(potential.get_config())
    assert clone.get_config() == potential.get_config()


def _round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path)  # no custom_objects: the classes are registered


def test_keras_file_round_trip_with_default_potential(tmp_path):
    inputs = keras.Input((None, FEATURES))
    outputs = tf_gradrnn.GradientRNN(UNITS, hidden_units=(8, 8), return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(sequences(), np.zeros((2, 6, 1)), epochs=1, verbose=0)
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(
        loaded.predict(sequences(), verbose=0), model.predict(sequences(), verbose=0)
    )
    assert isinstance(loaded.layers[-1], tf_gradrnn.GradientRNN)


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
        [
            keras.Input((None, FEATURES)),
            tf_gradrnn.GradientRNN(UNITS, potential=potential, return_state=False),
        ]
    )
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))
    assert loaded.layers[-1].potential.name == "user_potential"
    assert loaded.layers[-1].get_config()["potential"] is not None


def test_keras_file_round_trip_bidirectional_float64(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES), dtype="float64"),
            keras.layers.Bidirectional(
                tf_gradrnn.GradientRNN(UNITS, hidden_units=(5,), dtype="float64"), dtype="float64"
            ),
        ]
    )
    loaded = _round_trip(model, tmp_path)
    x = sequences("float64")
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded(x).dtype == "float64"


def test_bare_cell_in_keras_rnn_round_trip(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((None, FEATURES)),
            keras.layers.RNN(tf_gradrnn.GradientRNNCell(UNITS, hidden_units=(5,))),
        ]
    )
    loaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))


class Unregistered(keras.layers.Layer):
    """F(z) = sum(w * tanh(z)), a user's network that Keras knows by no registered name."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, z):
        return keras.ops.sum(self.w * keras.ops.tanh(z), axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "cls",
    [
        tf_gradrnn.GradientRNN,
        tf_gradrnn.HamiltonianRNN,
        tf_gradrnn.GradientRNNCell,
        tf_gradrnn.HamiltonianCell,
    ],
)
def test_from_config_passes_custom_objects_on(cls):
    network = "potential" if "Gradient" in cls.__name__ else "hamiltonian"
    config = cls(2, **{network: Unregistered(name="mine")}).get_config()
    with pytest.raises(TypeError, match="Unregistered"):
        cls.from_config(config)
    clone = cls.from_config(config, custom_objects={"Unregistered": Unregistered})
    assert isinstance(getattr(clone, network), Unregistered)
    assert getattr(clone, network).name == "mine"


def test_keras_file_with_an_unregistered_potential_loads_with_custom_objects(tmp_path):
    model = keras.Sequential(
        [keras.Input((None, FEATURES)), tf_gradrnn.GradientRNN(UNITS, potential=Unregistered())]
    )
    model.layers[-1].potential.w.assign(np.linspace(0.5, 1.5, FEATURES + UNITS))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(
        tmp_path / "model.keras", custom_objects={"Unregistered": Unregistered}
    )
    assert isinstance(loaded.layers[-1].potential, Unregistered)
    np.testing.assert_array_equal(loaded(sequences()), model(sequences()))
