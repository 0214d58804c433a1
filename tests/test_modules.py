import pytest
import torch
from conftest import architecture_names, gated_architectures

from sk_mmoe.architectures import ARCHITECTURES
from sk_mmoe.nn._modules import BatchedLinear, BatchedMLP, MultiTaskModule


def build(architecture, n_features, output_widths, **params):
    """The registered module with its own defaults, except ``params``."""
    entry = ARCHITECTURES[architecture]
    accepted = {k: v for k, v in params.items() if k in entry.params}
    return entry.module(n_features, output_widths, **entry.fixed, **accepted)


def MultiTaskNetwork(n_features, output_widths, architecture="mmoe", **params):
    return build(architecture, n_features, output_widths, **params)


@pytest.mark.parametrize("architecture", architecture_names())
@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape_with_mixed_widths(architecture, batch):
    net = build(architecture, 7, [1, 3, 1], n_experts=4)
    assert isinstance(net, MultiTaskModule)
    out = net(torch.randn(batch, 7))
    assert out.shape == (batch, 5)


@pytest.mark.parametrize("architecture", architecture_names())
def test_no_tower_layers(architecture):
    net = build(architecture, 3, [1, 1], tower_units=(), expert_units=(6, 4))
    assert net(torch.randn(2, 3)).shape == (2, 2)


@pytest.mark.parametrize("architecture", gated_architectures())
def test_gate_weights_are_distributions(architecture):
    net = build(architecture, 6, [1, 1, 1], n_experts=5)
    weights = net.gate_weights(torch.randn(4, 6))
    assert weights.shape == (4, 3, len(net.expert_names))
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3))
    assert (weights >= 0).all()
    if architecture == "moe":
        # one gate shared by all tasks
        torch.testing.assert_close(weights[:, 0], weights[:, 2])
    else:
        assert not torch.allclose(weights[:, 0], weights[:, 2])


@pytest.mark.parametrize(
    "architecture", sorted(set(architecture_names()) - set(gated_architectures()))
)
def test_ungated_architectures_have_no_gates(architecture):
    net = build(architecture, 3, [1])
    with pytest.raises(ValueError, match="no gates"):
        net.gate_weights(torch.randn(2, 3))


def test_all_gates_in_one_linear_and_experts_batched():
    net = MultiTaskNetwork(10, [1, 1, 1], n_experts=6, expert_units=(8, 4))
    assert isinstance(net.gates, torch.nn.Linear)
    assert net.gates.out_features == 3 * 6
    assert isinstance(net.experts, BatchedMLP)
    # first expert layer: one wide Linear; later layers: one (E, in, out) weight
    assert net.experts.first.out_features == 6 * 8
    assert net.experts.rest[0].weight.shape == (6, 8, 4)


def test_batched_linear_matches_independent_linears():
    layer = BatchedLinear(3, 4, 2)
    x = torch.randn(5, 3, 4)
    expected = torch.stack([x[:, k] @ layer.weight[k] + layer.bias[k] for k in range(3)], dim=1)
    torch.testing.assert_close(layer(x), expected)


def test_experts_initialised_independently():
    net = MultiTaskNetwork(10, [1], n_experts=4, expert_units=(8, 8))
    w = net.experts.rest[0].weight
    assert not torch.equal(w[0], w[1])
    first = net.experts.first.weight.view(4, 8, 10)
    assert not torch.equal(first[0], first[1])


def test_gate_dropout_renormalises_and_only_in_training():
    torch.manual_seed(0)
    net = MultiTaskNetwork(5, [1, 1], n_experts=6, gate_dropout=0.5)
    x = torch.randn(50, 5)
    net.train()
    w = net.gate_weights(x)
    torch.testing.assert_close(w.sum(-1), torch.ones(50, 2))
    assert (w == 0).any()
    net.eval()
    assert (net.gate_weights(x) > 0).all()


def test_registry_entries_build_their_modules():
    for name, entry in ARCHITECTURES.items():
        hyper = {p: None for p in entry.params}
        assert set(entry.module_kwargs(hyper)) == set(entry.fixed) | set(entry.params), name
        assert entry.has_gates is entry.module.has_gates


def test_register_rejects_duplicates_and_non_modules():
    from sk_mmoe.architectures import Architecture, register_architecture

    with pytest.raises(ValueError, match="already registered"):
        register_architecture(Architecture("mmoe", ARCHITECTURES["mmoe"].module))
    with pytest.raises(TypeError, match="not a torch module"):
        register_architecture(Architecture("bad", dict))
    assert "bad" not in ARCHITECTURES
