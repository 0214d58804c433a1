"""The parts of skorch that ``MMoENet`` relies on beyond its public hooks.

``MMoENet`` overrides ``run_single_epoch``, ``train_step``,
``train_step_single`` and ``validation_step`` and calls the private
``_set_training``, ``_zero_grad_optimizer`` and ``_step_optimizer`` (a leaner
per-batch path than skorch's; see ``sk_mmoe/_net.py``). ``pyproject.toml``
pins skorch to the tested major version; this test fails with a clear
message if a skorch release renames or re-signs any of them.
"""

import inspect

import pytest
from skorch import NeuralNet

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
        f"skorch.NeuralNet.{name} no longer exists; sk_mmoe._net.MMoENet uses it. "
        "Pin skorch to a version that has it or port MMoENet."
    )
    params = [
        p.name
        for p in inspect.signature(method).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    expected = CONTRACT[name]
    assert params[: len(expected)] == expected, (
        f"skorch.NeuralNet.{name} now takes {params}; sk_mmoe._net.MMoENet was "
        f"written for {expected}."
    )
