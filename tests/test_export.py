"""SavedModel export: layout, versions, permissions, signatures (declared shapes, feature
names), parity with Keras, graph-only loading, bad requests on every path a client takes."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_gradrnn
from tf_gradrnn import export_saved_model
from tf_gradrnn.serving import (
    InvalidRequestError,
    check_saved_model,
    predict_request,
    rest_request_body,
    saved_feature_names,
    serve_grpc,
    serve_rest,
)

FEATURES, UNITS = 3, 4


def make_model(dtype="float32", **layer_kwargs):
    inputs = keras.Input((None, FEATURES), dtype=dtype)
    y = tf_gradrnn.GradientRNN(
        UNITS, hidden_units=(8, 8), return_sequences=True, dtype=dtype, **layer_kwargs
    )(inputs)
    model = keras.Model(inputs, keras.layers.Reshape((-1,), dtype=dtype)(y))
    rng = np.random.default_rng(0)
    model.set_weights([0.5 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def sequences(batch=2, steps=6, dtype="float32", seed=1):
    return np.random.default_rng(seed).standard_normal((batch, steps, FEATURES)).astype(dtype)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = make_model()
    path = export_saved_model(model, tmp_path_factory.mktemp("export") / "gradient_rnn")
    return model, path


def test_layout_and_versions(exported, tmp_path):
    model, path = exported
    assert path.name == "1"
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables" / "variables.index").is_file()
    base = tmp_path / "models" / "demo"
    assert export_saved_model(model, base, warmup=False) == base / "1"
    assert export_saved_model(model, base, warmup=False) == base / "2"
    assert export_saved_model(model, base, version=7, warmup=False) == base / "7"
    assert export_saved_model(model, base, warmup=False) == base / "8"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "7", "8"]


def test_existing_version_is_never_overwritten(exported, tmp_path):
    model, _ = exported
    first = export_saved_model(model, tmp_path, version=3, warmup=False)
    stamp = (first / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_saved_model(model, tmp_path, version=3, warmup=False)
    assert (first / "saved_model.pb").stat().st_mtime_ns == stamp


BAD_VERSIONS = [0, -1, 1.5, "2", True, np.bool_(True), 2**63, 10**20]


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=[repr(v) for v in BAD_VERSIONS])
def test_bad_version(exported, tmp_path, version):
    # 2**63 and more do not fit the int64 TF Serving reads versions as.
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export_saved_model(exported[0], tmp_path / "models", version=version, warmup=False)
    assert not tmp_path.joinpath("models").exists()


def test_numpy_and_int64_limit_versions(exported, tmp_path):
    model, _ = exported
    assert export_saved_model(model, tmp_path, version=np.int64(5), warmup=False).name == "5"
    largest = export_saved_model(model, tmp_path, version=2**63 - 1, warmup=False)
    assert largest.name == "9223372036854775807"
    with pytest.raises(ValueError, match="largest TF Serving reads: pass a free version"):
        export_saved_model(model, tmp_path, warmup=False)


def test_only_ascii_digit_folders_are_versions(exported, tmp_path):
    # int("²") fails and int("٣") is 3, but TF Serving reads neither; nor a number past int64.
    for name in ("²", "٣", "99999999999999999999", ".tmp-9-abc", "2"):
        (tmp_path / name).mkdir()
    assert export_saved_model(exported[0], tmp_path, warmup=False) == tmp_path / "3"


def _tree(folder):
    return [folder, *sorted(folder.rglob("*"))]


def test_exported_files_are_readable_by_everyone_whatever_the_umask(exported, tmp_path):
    # mkdtemp makes 0700 folders and a umask of 077 would make 0600 files: a server running as
    # another user could not read them.
    base = tmp_path / "models" / "mine"
    previous = os.umask(0o077)
    try:
        version = export_saved_model(exported[0], base)
    finally:
        os.umask(previous)
    paths = [tmp_path / "models", *_tree(version.parent)]
    assert version / "saved_model.pb" in paths and version / "variables" in paths
    for path in paths:
        expected = 0o755 if path.is_dir() else 0o644
        assert path.stat().st_mode & 0o777 == expected, path


def test_a_server_running_as_nobody_reads_every_file(exported):
    if os.geteuid() != 0:
        pytest.skip("switching to the user nobody needs root")
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")
    # tmp_path is 0700: nobody could not even reach it, so export to a folder of its own.
    base = Path(tempfile.mkdtemp(prefix="tf_gradrnn-export-"))
    try:
        base.chmod(0o755)
        previous = os.umask(0o077)
        try:
            version = export_saved_model(exported[0], base / "models")
        finally:
            os.umask(previous)
        paths = _tree(version)
        files = [str(p) for p in paths if p.is_file()]
        folders = [str(p) for p in paths if p.is_dir()]
        for command in (["cat", *files], ["ls", *folders]):
            result = subprocess.run(
                ["runuser", "-u", "nobody", "--", *command], capture_output=True, timeout=60
            )
            assert result.returncode == 0, result.stderr.decode()
    finally:
        shutil.rmtree(base)


def test_crash_mid_export_leaves_old_versions_intact(exported, tmp_path, monkeypatch):
    model, _ = exported
    export_saved_model(model, tmp_path, warmup=False)

    def crash(obj, export_dir, *args, **kwargs):
        Path(export_dir, "saved_model.pb").write_bytes(b"half written")
        raise KeyboardInterrupt("killed mid-export")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, tmp_path, warmup=False)
    assert [p.name for p in tmp_path.iterdir()] == ["1"]
    assert tf.saved_model.load(str(tmp_path / "1")).signatures["step"] is not None


def test_signatures_match_keras_and_step_loop_matches_sequence(exported):
    model, path = exported
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"serving_default", "sequence", "step"}
    x = sequences()
    expected = model.predict(x, verbose=0)
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    assert out["y"].shape == (2, 6) and out["h"].shape == (2, UNITS)
    assert out["h_seq"].shape == (2, 6, UNITS)
    np.testing.assert_allclose(out["y"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out["h_seq"][:, -1], out["h"])

    h = np.zeros((2, UNITS), "float32")
    for t in range(6):
        step = loaded.signatures["step"](x_t=tf.constant(x[:, t]), h=tf.constant(h))
        assert step["y_t"].shape == (2,)
        np.testing.assert_array_equal(step["y_t"], out["y"][:, t])
        np.testing.assert_array_equal(step["h_next"], out["h_seq"][:, t])
        h = step["h_next"].numpy()

    h0 = np.random.default_rng(3).standard_normal((2, UNITS)).astype("float32")
    with_state = loaded.signatures["sequence"](x=tf.constant(x), h0=tf.constant(h0))
    layer = model.layers[1]
    np.testing.assert_allclose(
        with_state["y"], layer(x, initial_state=h0)[..., 0], rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_empty_sequence_returns_the_initial_state(exported, tmp_path, jit_compile):
    path = exported[1]
    if jit_compile:  # XLA once failed here: "Slice dim size 1 greater than ... dimension: 0"
        path = export_saved_model(exported[0], tmp_path, jit_compile=True, warmup=False)
    loaded = tf.saved_model.load(str(path))
    h0 = np.ones((2, UNITS), "float32")
    x = tf.zeros((2, 0, FEATURES))
    out = loaded.signatures["sequence"](x=x, h0=tf.constant(h0))
    assert out["y"].shape == (2, 0) and out["h_seq"].shape == (2, 0, UNITS)
    np.testing.assert_array_equal(out["h"], h0)
    out = loaded.signatures["serving_default"](x=x)
    assert out["y"].shape == (2, 0) and out["h_seq"].shape == (2, 0, UNITS)
    np.testing.assert_array_equal(out["h"], np.zeros((2, UNITS)))


def test_float64_model_exports_float64_signatures(tmp_path):
    model = make_model("float64")
    path = export_saved_model(model, tmp_path, warmup=False)
    loaded = tf.saved_model.load(str(path))
    x = sequences(dtype="float64")
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    assert out["y"].dtype == tf.float64
    # model(x), not predict: Keras' data adapters cast float64 arrays to floatx.
    np.testing.assert_allclose(out["y"], model(x), rtol=1e-12)


def test_go_backwards_layer_exports_in_processing_order(tmp_path):
    model = make_model(go_backwards=True)
    loaded = tf.saved_model.load(str(export_saved_model(model, tmp_path, warmup=False)))
    x = sequences()
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(out["y"], model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_xla_variant_gives_the_same_numbers(exported, tmp_path):
    model, path = exported
    xla_path = export_saved_model(model, tmp_path, jit_compile=True, warmup=False)
    x = tf.constant(sequences())
    plain = tf.saved_model.load(str(path)).signatures["serving_default"](x=x)
    xla = tf.saved_model.load(str(xla_path)).signatures["serving_default"](x=x)
    np.testing.assert_allclose(xla["y"], plain["y"], rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input x must have shape"):
        tf.saved_model.load(str(xla_path)).signatures["serving_default"](x=tf.zeros((2, 5, 2)))


def run_like_tf_serving(path, signature, inputs):
    """Runs a signature as TF Serving's C++ session does: `TF_SessionRun` on the graph the
    SavedModel loader builds. Python's `Session.run` would first refuse shapes that do not fit
    the declared ones; the C API, like the server, feeds them, so the graph must check them."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(path))
        spec = meta_graph.signature_def[signature]
        feeds = {
            graph.get_tensor_by_name(spec.inputs[name].name)._as_tf_output(): value
            for name, value in inputs.items()
        }
        names = sorted(spec.outputs)
        fetches = [graph.get_tensor_by_name(spec.outputs[n].name)._as_tf_output() for n in names]
        return dict(
            zip(names, session._call_tf_sessionrun(None, feeds, fetches, [], None), strict=True)
        )


def run_loaded(path, signature, inputs):
    """Runs a signature as `tf.saved_model.load` gives it to Python (no shape check either)."""
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


BAD_INPUTS = {
    "feature size": (
        "serving_default",
        {"x": np.zeros((2, 5, 2), "float32")},
        r"input x must have shape \(batch, time, 3\), got shape\] \[2 5 2\]",
    ),
    "rank 2": (
        "serving_default",
        {"x": np.zeros((5, 3), "float32")},
        r"input x must have shape \(batch, time, 3\), got shape\] \[5 3\]",
    ),
    # Its first three sizes fit: only a rank check that was not folded to a constant sees it.
    "rank 4": (
        "sequence",
        {"x": np.zeros((2, 5, 3, 1), "float32"), "h0": np.zeros((2, 4), "float32")},
        r"input x must have shape \(batch, time, 3\), got shape\] \[2 5 3 1\]",
    ),
    "state size": (
        "step",
        {"x_t": np.zeros((2, 3), "float32"), "h": np.zeros((2, 5), "float32")},
        r"input h must have shape \(batch, 4\), got shape\] \[2 5\]",
    ),
    "batch mismatch": (
        "sequence",
        {"x": np.zeros((2, 5, 3), "float32"), "h0": np.zeros((3, 4), "float32")},
        "inputs x and h0 must have the same batch size",
    ),
}


@pytest.mark.parametrize("run", [run_loaded, run_like_tf_serving], ids=["loaded", "c-session"])
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_inputs_fail_in_the_graph_naming_the_input(exported, case, run):
    signature, inputs, message = BAD_INPUTS[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        run(exported[1], signature, inputs)


def test_c_session_gives_the_signature_numbers(exported):
    x = sequences()
    expected = run_loaded(exported[1], "serving_default", {"x": x})
    answer = run_like_tf_serving(exported[1], "serving_default", {"x": x})
    for name in ("y", "h", "h_seq"):
        np.testing.assert_array_equal(answer[name], expected[name])


def test_wrong_dtype_is_refused_by_the_signature(exported):
    loaded = tf.saved_model.load(str(exported[1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        loaded.signatures["serving_default"](x=tf.zeros((2, 5, 3), tf.int32))


def test_model_with_other_weighted_layers_is_refused(tmp_path):
    inputs = keras.Input((None, FEATURES))
    y = tf_gradrnn.GradientRNN(UNITS, hidden_units=(4,), return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(y))
    with pytest.raises(ValueError, match="'head' \\(Dense\\) besides its GradientRNN.*left out"):
        export_saved_model(model, tmp_path)
    assert not any(tmp_path.iterdir())


def test_model_without_gradient_rnn_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.SimpleRNN(2)])
    with pytest.raises(ValueError, match="exactly one GradientRNN layer, found 0"):
        export_saved_model(model, tmp_path)


def test_something_else_than_a_model_is_refused(tmp_path):
    with pytest.raises(TypeError, match="a GradientRNN layer or a Keras model, got Dense"):
        export_saved_model(keras.layers.Dense(2), tmp_path)


def test_unbuilt_layer_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        export_saved_model(tf_gradrnn.GradientRNN(UNITS), tmp_path)


def test_exported_layer_alone(tmp_path):
    layer = tf_gradrnn.GradientRNN(UNITS, hidden_units=(4,))
    x = sequences()
    last = layer(x)
    loaded = tf.saved_model.load(str(export_saved_model(layer, tmp_path, warmup=False)))
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(out["y"][:, -1:], last, rtol=1e-6, atol=1e-6)


def test_fresh_process_without_tf_gradrnn_gives_keras_numbers(exported, tmp_path):
    model, path = exported
    x = sequences(batch=3, steps=7)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        loaded = tf.saved_model.load({str(path)!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        out = loaded.signatures["serving_default"](x=tf.constant(x))
        h = np.zeros((x.shape[0], {UNITS}), "float32")
        steps = []
        for t in range(x.shape[1]):
            step = loaded.signatures["step"](x_t=tf.constant(x[:, t]), h=tf.constant(h))
            h = step["h_next"].numpy()
            steps.append(step["y_t"].numpy().tolist())
        assert not any(m.startswith("tf_gradrnn") for m in sys.modules), "imported"
        print(json.dumps({{"y": out["y"].numpy().tolist(), "h": out["h"].numpy().tolist(),
                          "step_y": steps, "step_h": h.tolist()}}))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(answer["y"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.array(answer["step_y"]).T, answer["y"], rtol=0, atol=0)
    np.testing.assert_allclose(answer["step_h"], answer["h"], rtol=0, atol=0)


def saved_model_cli(*args):
    cli = Path(sys.executable).with_name("saved_model_cli")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_saved_model_cli_run_matches_keras(exported, tmp_path, jit_compile):
    model, path = exported
    if jit_compile:
        path = export_saved_model(model, tmp_path / "xla", jit_compile=True, warmup=False)
    x = sequences(batch=2, steps=5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x_t.npy", x[:, 0])
    np.save(tmp_path / "h.npy", np.zeros((2, UNITS), "float32"))
    out = tmp_path / "out"
    result = saved_model_cli(
        "run",
        "--dir",
        str(path),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"x={tmp_path / 'x.npy'}",
        "--outdir",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(
        np.load(out / "y.npy"), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    result = saved_model_cli(
        "run",
        "--dir",
        str(path),
        "--tag_set",
        "serve",
        "--signature_def",
        "step",
        "--inputs",
        f"x_t={tmp_path / 'x_t.npy'};h={tmp_path / 'h.npy'}",
        "--outdir",
        str(out),
        "--overwrite",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(
        np.load(out / "y_t.npy"), np.load(out / "y.npy")[:, 0], rtol=1e-6, atol=1e-7
    )


def declared_inputs(path) -> dict:
    """{signature: {input: (dtype, shape)}} as `saved_model_cli show --all` prints them."""
    result = saved_model_cli("show", "--dir", str(path), "--all")
    assert result.returncode == 0, result.stderr[-3000:]
    declared = {}
    for block in result.stdout.split("signature_def['")[1:]:
        name, _, body = block.partition("']")
        inputs = body.split("output(s):")[0]
        pattern = r"inputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)"
        declared[name] = {m[1]: (m[2], m[3]) for m in re.finditer(pattern, inputs)}
    return declared


def test_saved_model_cli_shows_the_declared_shapes(exported, tmp_path):
    # With feature names, so that the metadata signature (no inputs) is listed too.
    path = export_saved_model(exported[0], tmp_path, feature_names=["a", "b", "c"], warmup=False)
    assert declared_inputs(path) == {
        "serving_default": {"x": ("DT_FLOAT", "(-1, -1, 3)")},
        "sequence": {"x": ("DT_FLOAT", "(-1, -1, 3)"), "h0": ("DT_FLOAT", "(-1, 4)")},
        "step": {"x_t": ("DT_FLOAT", "(-1, 3)"), "h": ("DT_FLOAT", "(-1, 4)")},
        "metadata": {},
        "__saved_model_init_op": {},
    }


def test_saved_model_cli_names_the_bad_input(exported, tmp_path):
    # saved_model_cli runs Session.run, which checks the fed shape against the declared one.
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 2), "float32"))
    result = saved_model_cli(
        "run",
        "--dir",
        str(exported[1]),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"x={tmp_path / 'x.npy'}",
    )
    assert result.returncode != 0
    assert (
        "Cannot feed value of shape (2, 5, 2) for Tensor serving_default_x:0, which has shape "
        "(None, None, 3)" in result.stderr
    )


def test_warmup_records_replay_like_tf_serving(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    from tf_gradrnn.serving import serve_grpc

    _, path = exported
    loaded = tf.saved_model.load(str(path))
    records = list(
        tf.data.TFRecordDataset(str(path / "assets.extra" / "tf_serving_warmup_requests"))
    )
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    names = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert sorted(set(names)) == ["sequence", "serving_default", "step"]
    assert len(logs) == 6
    for log in logs:
        response = serve_grpc(loaded, log.predict_log.request)
        assert set(response.outputs) in ({"y", "h", "h_seq"}, {"y_t", "h_next"})


def test_missing_serving_api_skips_warmup_with_a_warning(exported, tmp_path, monkeypatch):
    monkeypatch.setattr("tf_gradrnn.serving.warmup.serving_api_available", lambda: False)
    with pytest.warns(UserWarning, match="no TF Serving warm-up requests"):
        path = export_saved_model(exported[0], tmp_path)
    assert not (path / "assets.extra").exists()


def test_grpc_and_rest_requests_answer_like_the_keras_model(exported):
    model, path = exported
    loaded = tf.saved_model.load(str(path))
    x = sequences(batch=2, steps=4)
    expected = model.predict(x, verbose=0)

    response = serve_grpc(loaded, predict_request({"x": x}))
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), expected, rtol=1e-6)

    rows = serve_rest(loaded, json.dumps(rest_request_body({"x": x})))
    assert len(rows["predictions"]) == 2
    assert set(rows["predictions"][0]) == {"y", "h", "h_seq"}
    np.testing.assert_allclose([p["y"] for p in rows["predictions"]], expected, rtol=1e-5)

    columns = serve_rest(loaded, rest_request_body({"x": x}, columnar=True))
    assert np.shape(columns["outputs"]["h_seq"]) == (2, 4, UNITS)
    np.testing.assert_allclose(columns["outputs"]["y"], expected, rtol=1e-5)

    h = np.zeros((2, UNITS), "float32")
    step = serve_rest(loaded, rest_request_body({"x_t": x[:, 0], "h": h}, "step", columnar=True))
    np.testing.assert_allclose(step["outputs"]["y_t"], expected[:, 0], rtol=1e-5)


BAD_REQUESTS = {
    "feature size": ({"x": np.zeros((2, 5, 2), "float32")}, r"input 'x'.*\(None, None, 3\)"),
    "rank 2": ({"x": np.zeros((5, 3), "float32")}, r"input 'x'.*expected rank 3"),
    "rank 4": ({"x": np.zeros((2, 5, 3, 1), "float32")}, r"input 'x'.*expected rank 3"),
    "dtype": ({"x": np.zeros((2, 5, 3), "int32")}, r"input 'x'"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_requests_name_the_input_in_the_python_helpers(exported, case):
    inputs, message = BAD_REQUESTS[case]
    loaded = tf.saved_model.load(str(exported[1]))
    with pytest.raises(InvalidRequestError, match=message):
        serve_grpc(loaded, predict_request(inputs))
    body = rest_request_body({k: v.astype("float32") for k, v in inputs.items()}, columnar=True)
    if case == "dtype":
        body["inputs"]["x"] = [[["a"] * 3] * 5] * 2
    with pytest.raises(InvalidRequestError, match=message):
        serve_rest(loaded, body)


# --- Feature names, verification ----------------------------------------------------------------


def test_feature_names_are_a_signature_that_grpc_clients_call(exported, tmp_path):
    names = ["pressure", "temperature", "flow"]
    path = export_saved_model(exported[0], tmp_path, feature_names=np.array(names), warmup=False)
    loaded = tf.saved_model.load(str(path))
    assert saved_feature_names(loaded) == names
    response = serve_grpc(loaded, predict_request({}, "metadata"))
    assert tf.make_ndarray(response.outputs["feature_names"]).tolist() == [
        name.encode() for name in names
    ]
    with pytest.raises(InvalidRequestError, match="Failed to get input map for signature"):
        serve_rest(loaded, {"signature_name": "metadata", "inputs": {}})
    without = tf.saved_model.load(str(exported[1]))
    assert saved_feature_names(without) is None and "metadata" not in without.signatures


BAD_FEATURE_NAMES = {
    "too few": (["a", "b"], ValueError, "has 2 names but the model takes 3 features"),
    "repeated": (["a", "b", "a"], ValueError, "repeats a name"),
    "not a string": (["a", 2, "c"], ValueError, "non-empty strings, got 2"),
    "empty": (["a", "", "c"], ValueError, "non-empty strings, got ''"),
    "one string": ("abc", TypeError, "a list of strings, got 'abc'"),
}


@pytest.mark.parametrize("case", list(BAD_FEATURE_NAMES), ids=list(BAD_FEATURE_NAMES))
def test_bad_feature_names(exported, tmp_path, case):
    names, error, message = BAD_FEATURE_NAMES[case]
    with pytest.raises(error, match=message):
        export_saved_model(exported[0], tmp_path, feature_names=names, warmup=False)
    assert not any(tmp_path.iterdir())


def test_inspect_shows_the_declared_shapes_and_the_feature_names(exported, tmp_path, capsys):
    from tf_gradrnn.cli import commands

    path = export_saved_model(exported[0], tmp_path, feature_names=["u", "v", "w"], warmup=False)
    assert commands.main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "input  x: float32 (None, None, 3)" in text
    assert "input  h0: float32 (None, 4)" in text
    assert "features: u, v, w" in text


def test_check_saved_model_compares_with_keras(exported):
    model, path = exported
    x = sequences()
    assert check_saved_model(path, model, x) < 1e-6
    other = make_model()
    other.set_weights([1.1 * w for w in model.get_weights()])
    with pytest.raises(RuntimeError, match="differs from the Keras model by"):
        check_saved_model(path, other, x)
