import pytest
import torch

from sk_mmoe._modules import BatchedLinear, BatchedMLP, MultiTaskNetwork


@pytest.mark.parametrize("architecture", ["mmoe", "moe", "shared_bottom"])
@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape_with_mixed_widths(architecture, batch):
    net = MultiTaskNetwork(7, [1, 3, 1], architecture=architecture, n_experts=4)
    out = net(torch.randn(batch, 7))
    assert out.shape == (batch, 5)


def test_no_tower_layers():
    net = MultiTaskNetwork(3, [1, 1], tower_units=(), expert_units=(6, 4))
    assert net(torch.randn(2, 3)).shape == (2, 2)


@pytest.mark.parametrize("architecture", ["mmoe", "moe"])
def test_gate_weights_are_distributions(architecture):
    net = MultiTaskNetwork(6, [1, 1, 1], architecture=architecture, n_experts=5)
    weights = net.gate_weights(torch.randn(4, 6))
    assert weights.shape == (4, 3, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3))
    assert (weights >= 0).all()
    if architecture == "moe":
        # one gate shared by all tasks
        torch.testing.assert_close(weights[:, 0], weights[:, 2])
    else:
        assert not torch.allclose(weights[:, 0], weights[:, 2])


def test_shared_bottom_has_no_gates():
    net = MultiTaskNetwork(3, [1], architecture="shared_bottom")
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


def test_unknown_architecture():
    with pytest.raises(ValueError, match="architecture"):
        MultiTaskNetwork(3, [1], architecture="mtl")
