"""Running a SavedModel signature as TF Serving's Predict does: the part gRPC and REST share.

Rules followed (`tensorflow_serving/servables/tensorflow/predict_util.cc`):
- The signature is `model_spec.signature_name` / `"signature_name"`, `serving_default` if unset.
- A request must name exactly the signature's inputs (`VerifyRequestInputsSize`).
"""

import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"
# A signature without inputs whose output `feature_names` (F,) names the features of x's last
# axis, written by `export_saved_model(..., feature_names=...)`.
METADATA_SIGNATURE = "metadata"


class InvalidRequestError(ValueError):
    """A predict request that TF Serving would refuse; the message names the offending part."""


def find(saved_model, name):
    """The loaded SavedModel's signature `name`; an unknown name lists the ones it has."""
    signatures = getattr(saved_model, "signatures", None)
    if signatures is None:
        raise TypeError(
            "saved_model must be what tf.saved_model.load(path) returns (an object with "
            f".signatures), received {type(saved_model).__name__}"
        )
    if name not in signatures:
        raise InvalidRequestError(
            f"Serving signature key {name!r} not found; this SavedModel has signatures "
            f"{quoted_names(signatures.keys())}"
        )
    return signatures[name]


def saved_feature_names(saved_model) -> list[str] | None:
    """The feature names an export stored (see `METADATA_SIGNATURE`), or None if it has none."""
    function = getattr(saved_model, "signatures", {}).get(METADATA_SIGNATURE)
    if function is None or "feature_names" not in function.structured_outputs:
        return None
    return [name.decode() for name in function()["feature_names"].numpy()]


def quoted_names(names) -> str:
    """Names as the error messages list them: sorted, quoted, or `none`."""
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def check_inputs(signature, specs, received, where):
    """Refuses a missing or unexpected input; `where` names the part of the request."""
    received = set(received)
    for kind, names in (("missing", set(specs) - received), ("unexpected", received - set(specs))):
        if names:
            raise InvalidRequestError(
                f"{kind} input {quoted_names(names)} in {where} for signature {signature!r}: "
                f"expected inputs {quoted_names(specs)}, received {quoted_names(received)}"
            )


def run(function, signature, specs, arrays):
    """Checks ranks and fixed dimensions, runs the signature and returns its outputs as arrays."""
    for key, array in arrays.items():
        expected = specs[key].shape
        if expected.rank is None:
            continue
        dims = tuple(expected.as_list())
        if array.ndim != expected.rank:
            raise InvalidRequestError(
                f"input {key!r} of signature {signature!r}: expected rank {expected.rank}, shape "
                f"{dims}, received rank {array.ndim}, shape {array.shape}"
            )
        for axis, (want, got) in enumerate(zip(dims, array.shape, strict=True)):
            if want is not None and want != got:
                raise InvalidRequestError(
                    f"input {key!r} of signature {signature!r}: expected shape {dims} (dimension "
                    f"{axis} of size {want}), received shape {array.shape}"
                )
    tensors = {key: tf.constant(array, dtype=specs[key].dtype) for key, array in arrays.items()}
    try:
        outputs = function(**tensors)
    except tf.errors.InvalidArgumentError as error:
        # E.g. x and h0 with different batch sizes (a signature cannot say they must agree), or
        # the run-time checks of a signature whose inputs have an unknown shape.
        lines = [line.strip() for line in error.message.splitlines()]
        noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
        reason = next((line for line in lines if line and not line.startswith(noise)), "")
        shapes = ", ".join(f"{key} {array.shape}" for key, array in sorted(arrays.items()))
        raise InvalidRequestError(
            f"signature {signature!r} refused inputs {shapes}: {reason}"
        ) from error
    return {key: value.numpy() for key, value in outputs.items()}
