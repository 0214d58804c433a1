"""Serving workers of ``run.py``: prediction latency per serving system, predict memory.

``SERVING`` is the one table of serving systems: ``run.py``'s latency report
shows its labels, and :func:`latency` builds the predictor it names.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from _measure import make_data, time_calls
from _rss import reset_peak, status_mb


def one_epoch_model(spec, X, Y):
    """``MMoERegressor`` of the spec's model size, fitted one epoch on ``X, Y``."""
    from sk_mmoe import MMoERegressor

    return MMoERegressor(
        n_experts=spec["experts"],
        expert_units=(spec["expert_units"],),
        tower_units=(spec["tower_units"],),
        max_epochs=1,
        random_state=0,
    ).fit(X, Y)


def _native(spec, X, Y):
    """``MMoERegressor.predict``."""
    return one_epoch_model(spec, X, Y).predict


def _onnxruntime(spec, X, Y):
    """The fitted model exported with ``sk_mmoe.onnx``, one reused ``InferenceSession``."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    import sk_mmoe.onnx  # noqa: F401 - registers the converters

    est = one_epoch_model(spec, X, Y)
    onx = to_onnx(est, X[:1])  # a float64 input, cast inside as predict casts it
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(A):
        return session.run(None, {name: A})

    return predict


def _mlp(spec, X, Y):
    """``MLPRegressor(128, 16).predict``, fitted one epoch."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    est = MLPRegressor(hidden_layer_sizes=(128, 16), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.partial_fit(X, Y)
    return est.predict


def _torch(spec, X, Y):
    """The fitted torch module called on the rows, unpadded: the floor of a forward pass."""
    import torch

    module = one_epoch_model(spec, X, Y).module_.eval()  # the module MMoERegressor trained

    def predict(A):
        with torch.inference_mode():
            return module(torch.from_numpy(A).float()).numpy()

    return predict


class Serving(NamedTuple):
    """One serving system: its row label, its predictor builder, a module it needs."""

    label: str
    build: object  # (spec, X, Y) -> predict(A)
    requires: str | None = None


#: serving name -> how it is shown and built; the MLP is every ratio's reference
SERVING = {
    "native": Serving("sk_mmoe predict (native)", _native),
    "onnxruntime": Serving("sk_mmoe through onnxruntime", _onnxruntime, "onnxruntime"),
    "mlp": Serving("sklearn MLPRegressor (128, 16)", _mlp),
    "torch": Serving("plain PyTorch forward, same module", _torch),
}


def latency(spec):
    """Prediction latency of one serving system on 1 row and on ``latency_rows`` rows.

    ``spec["serve"]`` names the system in ``SERVING``. Every system gets the
    same float64 rows and runs with its library's default threads (run.py
    sets no thread variables for these workers). Models are trained one
    epoch: latency does not depend on how well they fit.
    """
    X, Y = make_data(spec)
    one, block = X[:1].copy(), X[: spec["latency_rows"]].copy()
    predict = SERVING[spec["serve"]].build(spec, X, Y)
    return {
        "one": time_calls(lambda: predict(one), spec["one_row_calls"], warmup=20),
        "block": time_calls(lambda: predict(block), spec["block_calls"], warmup=3),
    }


def predict_memory(spec):
    """Peak RSS growth of ``MMoERegressor.predict`` on ``rows`` float64 rows.

    The model is fitted on 2,000 rows; ``X`` is built before the peak counter
    is reset, so the growth is what ``predict`` needs on top of its input.
    """
    X, Y = make_data({**spec, "rows": 2000})
    est = one_epoch_model(spec, X, Y)
    est.predict(X)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((spec["rows"], spec["features"]))  # float64
    before = status_mb("VmRSS")
    resettable = reset_peak()
    out = est.predict(X)
    peak = status_mb("VmHWM")
    return {
        "X_mb": X.nbytes / 2**20,
        "output_mb": out.nbytes / 2**20,
        "extra_mb": peak - before,
        "peak_reset": resettable,
    }
