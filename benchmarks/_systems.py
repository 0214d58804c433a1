"""One benchmark measurement in its own process (the worker behind ``run.py``).

    python benchmarks/_systems.py '{"system": "sk_mmoe", "rows": 100000, ...}'

prints one JSON line: per-epoch fit times, prediction times, or peak memory.
Every system trains the same model size (d inputs, E experts of one hidden
layer, towers of one hidden layer, T regression tasks) with Adam, learning
rate 1e-3, the same batch size and shuffling every epoch, on the same data
(``sk_mmoe.datasets.make_mmoe_tasks``). Times are taken with both a wall clock
and the process CPU clock; ``run.py`` chooses which one to report.

The plain-PyTorch rows import ``sk_mmoe.architectures.MixtureOfExperts`` -- the
torch module ``MMoERegressor`` trains -- so that they time the very same
arithmetic; everything else here uses public APIs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import numpy as np
from _rss import reset_peak as _reset_peak
from _rss import status_mb as _status_mb


# ---------------------------------------------------------------- clocks
class Clock:
    """Wall and CPU seconds between ``start`` and ``stop``."""

    def start(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self):
        return {
            "wall": time.perf_counter() - self._wall,
            "cpu": time.process_time() - self._cpu,
        }


def _epoch_timer_callback():
    """A skorch callback recording each epoch's wall and CPU time."""
    from skorch.callbacks import Callback

    class EpochClock(Callback):
        def initialize(self):
            self.times = []
            self._clock = Clock()
            return self

        def on_epoch_begin(self, net, **kwargs):
            self._clock.start()

        def on_epoch_end(self, net, **kwargs):
            self.times.append(self._clock.stop())

    return EpochClock()


def _timer_of(net):
    """The net's EpochClock (sk_mmoe hands skorch a copy of the one it got)."""
    return next(cb for _, cb in net.callbacks_ if type(cb).__name__ == "EpochClock")


def _time_calls(fn, repeats, warmup):
    """Median wall and CPU seconds of single calls of ``fn``."""
    for _ in range(warmup):
        fn()
    clock, times = Clock(), []
    for _ in range(repeats):
        clock.start()
        fn()
        times.append(clock.stop())
    return {k: float(np.median([t[k] for t in times])) for k in ("wall", "cpu")}


@contextlib.contextmanager
def _quiet():
    """Silence a peer's prints and progress bars."""
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        yield


# ------------------------------------------------------------------ data
def make_data(spec):
    from sk_mmoe.datasets import make_mmoe_tasks

    X, Y = make_mmoe_tasks(
        spec["rows"], n_features=spec["features"], n_tasks=spec["tasks"], random_state=0
    )
    return X, Y


# --------------------------------------------------------------- systems
def plain(spec, X, Y, loader=False, tuned=False, extra_backward=0):
    """A hand-written PyTorch loop over sk_mmoe's module: MSE, Adam, randperm slicing.

    ``tuned``: batches gathered with ``index_select`` and Adam's fused kernel,
    the two tricks sk_mmoe's own loop uses -- the tighter floor.
    ``loader``: batches from a torch ``DataLoader`` instead.
    ``extra_backward``: that many more backward passes of the loss per step
    (``retain_graph=True``), the yardstick of the per-task gradient methods.
    """
    import torch

    from sk_mmoe.architectures import MixtureOfExperts

    torch.manual_seed(0)
    module = MixtureOfExperts(
        spec["features"],
        [1] * spec["tasks"],
        n_experts=spec["experts"],
        expert_units=[spec["expert_units"]],
        tower_units=[spec["tower_units"]],
    )
    fused = {"fused": True} if tuned else {}
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, **fused)
    Xt = torch.from_numpy(X.astype(np.float32))
    Yt = torch.from_numpy(Y.astype(np.float32))
    n, size = len(Xt), spec["batch_size"]
    if loader:
        data = torch.utils.data.TensorDataset(Xt, Yt)
        batches = torch.utils.data.DataLoader(data, batch_size=size, shuffle=True)

    clock, epochs = Clock(), []
    module.train()
    for _ in range(spec["epochs"]):
        clock.start()
        if tuned:
            perm = torch.randperm(n)
            batches = ((Xt.index_select(0, i), Yt.index_select(0, i)) for i in perm.split(size))
        elif not loader:
            perm = torch.randperm(n)
            batches = ((Xt[idx], Yt[idx]) for idx in perm.split(size))
        for xb, yb in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(module(xb), yb)
            for _ in range(extra_backward):
                loss.backward(retain_graph=True)
            loss.backward()
            optimizer.step()
        epochs.append(clock.stop())
    if loader or tuned or extra_backward:
        return {"epochs": epochs}

    module.eval()

    def predict(A):
        with torch.inference_mode():
            return np.concatenate(
                [
                    module(torch.from_numpy(A[i : i + 4096]).float()).numpy()
                    for i in range(0, len(A), 4096)
                ]
            )

    return {"epochs": epochs, **_predict_times(spec, X, predict)}


def skorch_net(spec, X, Y):
    """skorch's NeuralNetRegressor around the same module, skorch's defaults."""
    import torch
    from skorch import NeuralNetRegressor

    from sk_mmoe.architectures import MixtureOfExperts

    torch.manual_seed(0)
    timer = _epoch_timer_callback()
    net = NeuralNetRegressor(
        MixtureOfExperts,
        module__n_features=spec["features"],
        module__output_widths=[1] * spec["tasks"],
        module__n_experts=spec["experts"],
        module__expert_units=[spec["expert_units"]],
        module__tower_units=[spec["tower_units"]],
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=spec["batch_size"],
        max_epochs=spec["epochs"],
        # every row trains (skorch holds out 20% by default) and is shuffled
        train_split=None,
        iterator_train__shuffle=True,
        callbacks=[timer],
        verbose=0,
    )
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    net.fit(X32, Y32)
    return {
        "epochs": _timer_of(net).times,
        **_predict_times(spec, X, lambda A: net.predict(A.astype(np.float32))),
    }


#: CGC and PLE next to the MMoE (8 experts of 16 units): the same experts of
#: 16 units and towers, numbers of experts chosen for about the same parameter
#: count on the paper-sized model (MMoE 14,834; CGC 14,430; PLE 15,393)
ARCHITECTURES = {
    "sk_mmoe_cgc": {"architecture": "cgc", "n_experts": 4, "n_task_experts": 2},
    "sk_mmoe_ple": {"architecture": "ple", "n_experts": 3, "n_task_experts": 2, "n_levels": 2},
}


def sk_mmoe(spec, X, Y, architecture=None):
    """sk_mmoe.MMoERegressor with its defaults but the benchmark's sizes.

    ``architecture``: a key of ``ARCHITECTURES`` (CGC, PLE) instead of the MMoE.
    ``spec`` may set ``task_weights`` and ``track_task_conflict``.
    """
    from sk_mmoe import MMoERegressor

    timer = _epoch_timer_callback()
    params = {"n_experts": spec["experts"], **ARCHITECTURES.get(architecture, {})}
    est = MMoERegressor(
        task_weights=spec.get("task_weights"),
        track_task_conflict=spec.get("track_task_conflict", False),
        expert_units=(spec["expert_units"],),
        tower_units=(spec["tower_units"],),
        batch_size=spec["batch_size"],
        max_epochs=spec["epochs"],
        early_stopping=False,  # every row trains, as in the other systems
        callbacks=[timer],
        random_state=0,
        **params,
    )
    clock = Clock()
    clock.start()
    est.fit(X, Y)
    fit_total = clock.stop()
    return {
        "epochs": _timer_of(est.net_).times,
        "fit_total": fit_total,
        "n_parameters": sum(p.numel() for p in est.module_.parameters()),
        **_predict_times(spec, X, est.predict),
    }


def deepctr(spec, X, Y):
    """DeepCTR-Torch's MMOE: linear gates like the paper, no L2 penalty."""
    with _quiet():
        from deepctr_torch.inputs import DenseFeat
        from deepctr_torch.models import MMOE

    tasks = spec["tasks"]
    model = MMOE(
        [DenseFeat("x", spec["features"])],
        num_experts=spec["experts"],
        expert_dnn_hidden_units=(spec["expert_units"],),
        gate_dnn_hidden_units=(),
        tower_dnn_hidden_units=(spec["tower_units"],),
        l2_reg_embedding=0.0,
        l2_reg_linear=0.0,
        task_types=["regression"] * tasks,
        task_names=[f"t{k}" for k in range(tasks)],
        seed=0,
        device="cpu",
    )
    model.compile("adam", loss=["mse"] * tasks)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    clock, epochs = Clock(), []
    for _ in range(spec["epochs"]):
        clock.start()
        with _quiet():
            model.fit({"x": X32}, Y32, batch_size=spec["batch_size"], epochs=1, verbose=0)
        epochs.append(clock.stop())

    def predict(A):
        return model.predict({"x": A}, batch_size=4096)

    return {"epochs": epochs, **_predict_times(spec, X, predict)}


def rechub(spec, X, Y):
    """torch-rechub's MMOE trained by its MTLTrainer (its MLPs include BatchNorm)."""
    import torch
    from torch.utils.data import DataLoader

    with _quiet():
        from torch_rechub.basic.features import DenseFeature
        from torch_rechub.models.multi_task import MMOE
        from torch_rechub.trainers import MTLTrainer
        from torch_rechub.utils.data import PredictDataset, TorchDataset

    torch.manual_seed(0)
    tasks = spec["tasks"]
    model = MMOE(
        features=[DenseFeature("x", embed_dim=spec["features"])],
        task_types=["regression"] * tasks,
        n_expert=spec["experts"],
        expert_params={"dims": [spec["expert_units"]]},
        tower_params_list=[{"dims": [spec["tower_units"]]}] * tasks,
    )
    trainer = MTLTrainer(
        model,
        task_types=["regression"] * tasks,
        optimizer_params={"lr": 1e-3, "weight_decay": 0.0},
        n_epoch=1,
        device="cpu",
    )
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    loader = DataLoader(TorchDataset({"x": X32}, Y32), batch_size=spec["batch_size"], shuffle=True)
    clock, epochs = Clock(), []
    for _ in range(spec["epochs"]):
        clock.start()
        with _quiet():
            trainer.train_one_epoch(loader)
        epochs.append(clock.stop())

    def predict(A):
        data = DataLoader(PredictDataset({"x": A.astype(np.float32)}), batch_size=4096)
        with _quiet():
            return np.asarray(trainer.predict(model, data))

    return {"epochs": epochs, **_predict_times(spec, X, predict)}


def mlp(spec, X, Y):
    """scikit-learn's MLPRegressor (128, 16): about the same parameter count."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    est = MLPRegressor(
        hidden_layer_sizes=(128, 16),
        batch_size=spec["batch_size"],
        learning_rate_init=1e-3,
        shuffle=True,
        random_state=0,
    )
    clock, epochs = Clock(), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(spec["epochs"]):
            clock.start()
            est.partial_fit(X, Y)  # one epoch per call
            epochs.append(clock.stop())
    return {"epochs": epochs, **_predict_times(spec, X, est.predict)}


def _predict_times(spec, X, predict):
    if not spec.get("predict", True):
        return {}
    one = X[:1].copy()
    return {
        "predict_one": _time_calls(lambda: predict(one), spec["one_row_calls"], warmup=20),
        "predict_all": _time_calls(lambda: predict(X), spec["predict_repeats"], warmup=1),
    }


# --------------------------------------------------------------- latency
def latency(spec, X, Y):
    """Prediction latency of one serving system on 1 row and on ``latency_rows`` rows.

    ``spec["serve"]`` picks the system: ``"native"`` (``MMoERegressor.predict``),
    ``"onnxruntime"`` (the same fitted model exported with ``sk_mmoe.onnx`` and
    run by one reused ``InferenceSession``, default options), ``"mlp"``
    (``MLPRegressor.predict``) or ``"torch"`` (the fitted torch module called on
    the rows, unpadded: the floor of a forward pass). Every system gets the
    same float64 rows and runs with its library's default threads (run.py sets
    no thread variables for these workers). Models are trained one epoch:
    latency does not depend on how well they fit.
    """
    import warnings

    one, block = X[:1].copy(), X[: spec["latency_rows"]].copy()
    serve = spec["serve"]
    if serve == "mlp":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        est = MLPRegressor(hidden_layer_sizes=(128, 16), random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.partial_fit(X, Y)
        predict = est.predict
    else:
        est = _one_epoch_model(spec, X, Y)
        predict = est.predict
    if serve == "onnxruntime":
        import onnxruntime as ort
        from skl2onnx import to_onnx

        import sk_mmoe.onnx  # noqa: F401 - registers the converters

        onx = to_onnx(est, one)  # a float64 input, cast inside as predict casts it
        session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def predict(A):
            return session.run(None, {name: A})

    elif serve == "torch":
        import torch

        module = est.module_.eval()  # the module MMoERegressor trained

        def predict(A):
            with torch.inference_mode():
                return module(torch.from_numpy(A).float()).numpy()

    return {
        "one": _time_calls(lambda: predict(one), spec["one_row_calls"], warmup=20),
        "block": _time_calls(lambda: predict(block), spec["block_calls"], warmup=3),
    }


def _one_epoch_model(spec, X, Y):
    """``MMoERegressor`` of the spec's model size, fitted one epoch on ``X, Y``."""
    from sk_mmoe import MMoERegressor

    return MMoERegressor(
        n_experts=spec["experts"],
        expert_units=(spec["expert_units"],),
        tower_units=(spec["tower_units"],),
        max_epochs=1,
        random_state=0,
    ).fit(X, Y)


# ---------------------------------------------------------------- memory
def predict_memory(spec):
    """Peak RSS growth of ``MMoERegressor.predict`` on ``rows`` float64 rows.

    The model is fitted on 2,000 rows; ``X`` is built before the peak counter
    is reset, so the growth is what ``predict`` needs on top of its input.
    """
    X, Y = make_data({**spec, "rows": 2000})
    est = _one_epoch_model(spec, X, Y)
    est.predict(X)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((spec["rows"], spec["features"]))  # float64
    before = _status_mb("VmRSS")
    resettable = _reset_peak()
    out = est.predict(X)
    peak = _status_mb("VmHWM")
    return {
        "X_mb": X.nbytes / 2**20,
        "output_mb": out.nbytes / 2**20,
        "extra_mb": peak - before,
        "peak_reset": resettable,
    }


SYSTEMS = {
    "plain": plain,
    "plain_tuned": lambda spec, X, Y: plain(spec, X, Y, tuned=True),
    "plain_loader": lambda spec, X, Y: plain(spec, X, Y, loader=True),
    # the tighter floor plus one backward pass per task
    "plain_backward_per_task": lambda spec, X, Y: plain(
        spec, X, Y, tuned=True, extra_backward=spec["tasks"]
    ),
    "skorch": skorch_net,
    "sk_mmoe": sk_mmoe,
    "sk_mmoe_cgc": lambda spec, X, Y: sk_mmoe(spec, X, Y, "sk_mmoe_cgc"),
    "sk_mmoe_ple": lambda spec, X, Y: sk_mmoe(spec, X, Y, "sk_mmoe_ple"),
    "deepctr": deepctr,
    "rechub": rechub,
    "mlp": mlp,
    "latency": latency,
}


def scaling(spec):
    """Per-epoch times of one system for each of ``spec["configs"]``, in turn."""
    results = []
    for config in spec["configs"]:
        X, Y = make_data(config)
        results.append(SYSTEMS[spec["inner"]]({**config, "predict": False}, X, Y)["epochs"])
        del X, Y
    return {"configs": results}


def main():
    spec = json.loads(sys.argv[1])
    if spec["system"] == "predict_memory":
        result = predict_memory(spec)
    elif spec["system"] == "scaling":
        result = scaling(spec)
    else:
        X, Y = make_data(spec)
        result = SYSTEMS[spec["system"]](spec, X, Y)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
