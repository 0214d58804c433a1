"""The trained systems of ``run.py``: each fits the same model on the same data.

Every function takes the worker's ``spec`` and the data ``X, Y`` and returns
per-epoch times (``{"epochs": [{"wall": s, "cpu": s}, ...]}``), with
prediction times unless ``spec["predict"]`` is False. ``_systems.SYSTEMS``
names them and says how the report shows them.

The plain-PyTorch loops import ``sk_mmoe.architectures.MixtureOfExperts`` --
the torch module ``MMoERegressor`` trains -- so that they time the very same
arithmetic; everything else here uses public APIs.
"""

from __future__ import annotations

import numpy as np
from _measure import Clock, epoch_timer_callback, predict_times, quiet, timer_of


def plain(spec, X, Y, loader=False, tuned=False, extra_backward=0):
    """A hand-written PyTorch loop over sk_mmoe's module: MSE, Adam, randperm slicing.

    ``tuned``: batches gathered with ``index_select`` and Adam's fused kernel,
    the two tricks sk_mmoe's own loop uses -- the tighter floor.
    ``loader``: batches from a torch ``DataLoader`` instead.
    ``extra_backward``: that many more backward passes of the loss per step
    (``retain_graph=True``), the yardstick of the per-task gradient methods.
    """
    import torch

    # the module MMoERegressor trains, timed without the estimator: the floor
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

    return {"epochs": epochs, **predict_times(spec, X, predict)}


def skorch_net(spec, X, Y):
    """skorch's NeuralNetRegressor around the same module, skorch's defaults."""
    import torch
    from skorch import NeuralNetRegressor

    from sk_mmoe.architectures import MixtureOfExperts

    torch.manual_seed(0)
    timer = epoch_timer_callback()
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
        "epochs": timer_of(net).times,
        **predict_times(spec, X, lambda A: net.predict(A.astype(np.float32))),
    }


def sk_mmoe(spec, X, Y, **params):
    """sk_mmoe.MMoERegressor with its defaults but the benchmark's sizes.

    ``params``: more estimator parameters (an architecture other than the
    MMoE, its numbers of experts). ``spec`` may set ``task_weights`` and
    ``track_task_conflict``.
    """
    from sk_mmoe import MMoERegressor

    timer = epoch_timer_callback()
    params = {"n_experts": spec["experts"], **params}
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
        "epochs": timer_of(est.net_).times,
        "fit_total": fit_total,
        "n_parameters": sum(p.numel() for p in est.module_.parameters()),
        **predict_times(spec, X, est.predict),
    }


def deepctr(spec, X, Y):
    """DeepCTR-Torch's MMOE: linear gates like the paper, no L2 penalty."""
    with quiet():
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
        with quiet():
            model.fit({"x": X32}, Y32, batch_size=spec["batch_size"], epochs=1, verbose=0)
        epochs.append(clock.stop())

    def predict(A):
        return model.predict({"x": A}, batch_size=4096)

    return {"epochs": epochs, **predict_times(spec, X, predict)}


def rechub(spec, X, Y):
    """torch-rechub's MMOE trained by its MTLTrainer (its MLPs include BatchNorm)."""
    import torch
    from torch.utils.data import DataLoader

    with quiet():
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
        with quiet():
            trainer.train_one_epoch(loader)
        epochs.append(clock.stop())

    def predict(A):
        data = DataLoader(PredictDataset({"x": A.astype(np.float32)}), batch_size=4096)
        with quiet():
            return np.asarray(trainer.predict(model, data))

    return {"epochs": epochs, **predict_times(spec, X, predict)}


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
    return {"epochs": epochs, **predict_times(spec, X, est.predict)}


def default_fit(spec, X, Y):
    """Wall and CPU seconds of one ``MMoERegressor(**spec["params"]).fit(X, Y)``.

    The estimator's defaults except ``spec["params"]``; the data is built
    before the clock starts. Also returns the epochs the fit ran (early
    stopping may end it sooner than ``max_epochs``).
    """
    from sk_mmoe import MMoERegressor

    # JSON turned tuples (expert_units=(16,)) into lists: back to tuples
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["params"].items()}
    est = MMoERegressor(**params)
    clock = Clock()
    clock.start()
    est.fit(X, Y)
    return {"fit": clock.stop(), "epochs_run": len(est.net_.history)}
