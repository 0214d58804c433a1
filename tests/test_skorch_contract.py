"""The parts of skorch that ``MMoENet`` relies on beyond its public hooks.

``MMoENet`` overrides ``run_single_epoch``, ``train_step``,
``train_step_single`` and ``validation_step`` and calls the private
``_set_training``, ``_zero_grad_optimizer`` and ``_step_optimizer`` (a leaner
per-batch path than skorch's; see ``sk_mmoe/training/_net.py``). ``pyproject.toml``
pins skorch to the tested major version; this test fails with a clear
message if a skorch release renames or re-signs any of them.

``AcceleratedMMoENet`` (``accelerator=``) also relies on how skorch's
``AccelerateMixin`` uses the accelerator it is given: it hands the module
and the criterion to ``accelerator.prepare`` and keeps what that returns
(``PlainModulesAccelerator`` returns them as they are), and it runs each
step through ``accelerator.backward``.
"""

import inspect

import pytest
import torch
from conftest import RecordingAccelerator
from skorch import NeuralNet
from skorch.hf import AccelerateMixin

#: method -> the parameters sk_mmoe passes or overrides, in order
CONTRACT = {
    "run_single_epoch": ["self", "iterator", "training", "prefix", "step_fn"],
    "train_step": ["self", "batch"],
    "train_step_single": ["self", "batch"],
    "validation_step": ["self", "batch"],
    "get_train_step_accumulator": ["self"],
    "_set_training": ["self", "training"],
    "_zero_grad_optimizer": ["self"],
    "_step_optimizer": ["self", "step_fn"],
    "infer": ["self", "x"],
    "get_loss": ["self", "y_pred", "y_true", "X", "training"],
    "notify": ["self", "method_name"],
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_skorch_still_has_what_mmoenet_uses(name):
    method = getattr(NeuralNet, name, None)
    assert method is not None, (
        f"skorch.NeuralNet.{name} no longer exists; sk_mmoe.training._net.MMoENet uses it. "
        "Pin skorch to a version that has it or port MMoENet."
    )
    params = [
        p.name
        for p in inspect.signature(method).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    expected = CONTRACT[name]
    assert params[: len(expected)] == expected, (
        f"skorch.NeuralNet.{name} now takes {params}; sk_mmoe.training._net.MMoENet was "
        f"written for {expected}."
    )


class _AcceleratedNet(AccelerateMixin, NeuralNet):
    pass


def test_accelerate_mixin_prepares_module_and_criterion_and_keeps_what_prepare_returns():
    accelerator = RecordingAccelerator()
    net = _AcceleratedNet(
        torch.nn.Linear(3, 1),
        criterion=torch.nn.MSELoss,
        accelerator=accelerator,
        device=None,
        max_epochs=1,
        train_split=None,
    ).initialize()
    assert any(obj is net.module_ for obj in accelerator.prepared), (
        "skorch's AccelerateMixin no longer prepares the module; "
        "sk_mmoe.training._net.PlainModulesAccelerator relies on it."
    )
    assert any(obj is net.criterion_ for obj in accelerator.prepared), (
        "skorch's AccelerateMixin no longer prepares the criterion; "
        "sk_mmoe.training._net.PlainModulesAccelerator relies on it."
    )
    X, y = torch.zeros(8, 3), torch.zeros(8, 1)
    net.partial_fit(X, y)
    assert accelerator.n_backward == 1, "AccelerateMixin no longer uses accelerator.backward"


def test_accelerate_mixin_still_has_the_hooks_accelerated_mmoenet_uses():
    for name in ("train_step", "train_step_single", "on_train_end", "initialize"):
        assert name in vars(AccelerateMixin), (
            f"skorch.hf.AccelerateMixin.{name} is gone; sk_mmoe.training._net.AcceleratedMMoENet "
            "was written for it."
        )
    params = inspect.signature(AccelerateMixin.__init__).parameters
    assert "accelerator" in params and "unwrap_after_train" in params
