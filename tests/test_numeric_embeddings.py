"""Numeric-column embeddings: bins, the two modules, and their ONNX emitters.

Each module is checked against the reference implementation
(``rtdl_num_embeddings``, weights copied across) and against a naive loop
over rows, columns and bins written here from the paper's formulas.
"""

import collections
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from sk_mmoe.inputs._columns import numeric_column as _numeric_column
from sk_mmoe.inputs._numeric_layers import (
    MIN_ROWS,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    emit_periodic,
    emit_piecewise_linear,
    fit_bins,
)

#: column 0: 8 bins, column 1: 3, column 2: one bin (min-max scaling), column 3: 5
RAGGED_BINS = [
    np.linspace(-2.0, 2.0, 9),
    np.array([-1.0, 0.0, 0.5, 3.0]),
    np.array([0.0, 10.0]),
    np.array([-3.0, -1.0, 0.0, 0.1, 0.2, 5.0]),
]


def seeded(make, seed=0):
    """``make()`` with torch's random generator seeded, restored after."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


def values(bins, n_rows, seed=0):
    """``(n_rows, F)`` float32: inside and outside each column's edges, and on the edges."""
    rng = np.random.default_rng(seed)
    low = np.array([b[0] for b in bins])
    high = np.array([b[-1] for b in bins])
    span = high - low
    x = rng.uniform(low - 0.3 * span, high + 0.3 * span, size=(n_rows, len(bins)))
    for j, b in enumerate(bins):  # the first rows exactly on the edges
        n = min(len(b), n_rows)
        x[:n, j] = b[:n]
    return torch.as_tensor(x, dtype=torch.float32)


def piecewise_linear(bins=RAGGED_BINS, d_embedding=3, activation=False, seed=0):
    """The module with its piecewise-linear weight drawn too (it starts at zero)."""

    def make():
        module = PiecewiseLinearEmbedding(bins, d_embedding, activation=activation)
        bound = module.weight.shape[1] ** -0.5
        torch.nn.init.uniform_(module.weight, -bound, bound)
        return module

    return seeded(make, seed)


# ------------------------------------------------------------ references
def naive_piecewise_linear(x, bins, module):
    """The paper's encoding (rtdl's clamps), bin by bin, times the weight: float64."""
    weight = module.weight.detach().double().numpy()
    linear_weight = module.linear_weight.detach().double().numpy()
    linear_bias = module.linear_bias.detach().double().numpy()
    x = x.double().numpy()
    bins = [np.asarray(b, dtype=np.float32).astype(np.float64) for b in bins]
    out = np.zeros((*x.shape, weight.shape[2]))
    for r in range(x.shape[0]):
        for j, edges in enumerate(bins):
            n = len(edges) - 1
            encoding = np.zeros(n)
            for i in range(n):
                t = (x[r, j] - edges[i]) / (edges[i + 1] - edges[i])
                if n == 1:
                    encoding[i] = t
                elif i == 0:
                    encoding[i] = min(t, 1.0)
                elif i == n - 1:
                    encoding[i] = max(t, 0.0)
                else:
                    encoding[i] = min(max(t, 0.0), 1.0)
            piecewise = encoding @ weight[j, :n]
            if module.activation:
                piecewise = np.maximum(piecewise, 0.0)
            out[r, j] = x[r, j] * linear_weight[j] + linear_bias[j] + piecewise
    return out


def naive_periodic(x, module):
    """``relu([cos, sin](2 pi c x) @ W + b)`` column by column: float64.

    The angle ``2 pi c x`` is the float32 product, as the module (and rtdl)
    computes it: at angles of many turns its rounding is the float32 model's.
    """
    two_pi = np.float32(2 * math.pi)
    frequencies = (two_pi * module.frequencies.detach().numpy()).astype(np.float32)
    weight = module.weight.detach().double().numpy()
    bias = module.bias.detach().double().numpy()
    x = x.numpy()
    out = np.zeros((*x.shape, weight.shape[-1]))
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            angle = (frequencies[j] * x[r, j]).astype(np.float64)  # float32 product
            features = np.concatenate([np.cos(angle), np.sin(angle)])
            w, b = (weight, bias) if module.lite else (weight[j], bias[j])
            out[r, j] = np.maximum(features @ w + b, 0.0)
    return out


def rtdl_piecewise_linear(module):
    """``rtdl_num_embeddings.PiecewiseLinearEmbeddings`` holding ``module``'s weights."""
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rtdl warns of one-bin columns
        reference = rtdl.PiecewiseLinearEmbeddings(
            [b.clone() for b in module.bins],
            module.d_embedding,
            activation=module.activation,
            version="B",
        )
    # rtdl keeps the last bin of each column in the last slot: slots n-1 .. K-2 pad
    weight = torch.zeros_like(module.weight)
    for j, last in enumerate(module.last_bin.tolist()):
        weight[j, :last] = module.weight[j, :last]
        weight[j, -1] = module.weight[j, last]
    with torch.no_grad():
        reference.linear.weight.copy_(weight)
        reference.linear0.weight.copy_(module.linear_weight)
        reference.linear0.bias.copy_(module.linear_bias)
    return reference


def rtdl_periodic(module):
    """``rtdl_num_embeddings.PeriodicEmbeddings`` holding ``module``'s weights."""
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    n_frequencies = module.frequencies.shape[1]
    reference = rtdl.PeriodicEmbeddings(
        module.n_features,
        module.d_embedding,
        n_frequencies=n_frequencies,
        frequency_init_scale=module.frequency_scale,
        lite=module.lite,
    )
    with torch.no_grad():
        reference.periodic.weight.copy_(module.frequencies)
        # nn.Linear (lite) stores (D, 2K); rtdl's per-column map (F, 2K, D) as ours
        weight = module.weight.t() if module.lite else module.weight
        reference.linear.weight.copy_(weight)
        reference.linear.bias.copy_(module.bias)
    return reference


PERIODIC_CASES = [
    {"n_features": 1, "d_embedding": 1, "n_frequencies": 1},
    {"n_features": 3, "d_embedding": 5, "n_frequencies": 48},
    {"n_features": 20, "d_embedding": 16, "n_frequencies": 8, "frequency_scale": 0.3},
    {"n_features": 4, "d_embedding": 24, "n_frequencies": 48, "lite": True},
]


def periodic(seed=0, **params):
    return seeded(lambda: PeriodicEmbedding(**params), seed)


# ----------------------------------------------------- (a) against rtdl
@pytest.mark.parametrize("activation", [False, True])
def test_piecewise_linear_equals_rtdl(activation):
    module = piecewise_linear(activation=activation)
    reference = rtdl_piecewise_linear(module)
    x = values(RAGGED_BINS, 300)
    torch.testing.assert_close(module(x), reference(x), rtol=1e-6, atol=1e-6)
    # and the gradients of the same loss, slot by slot
    grad = torch.randn(300, 4, 3, generator=torch.Generator().manual_seed(1))
    (module(x) * grad).sum().backward()
    (reference(x) * grad).sum().backward()
    # rtdl's gradient in our layout (its padding slots get none)
    expected = torch.zeros_like(module.weight)
    for j, last in enumerate(module.last_bin.tolist()):
        expected[j, :last] = reference.linear.weight.grad[j, :last]
        expected[j, last] = reference.linear.weight.grad[j, -1]
    torch.testing.assert_close(module.weight.grad, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(module.linear_weight.grad, reference.linear0.weight.grad)
    torch.testing.assert_close(module.linear_bias.grad, reference.linear0.bias.grad)


@pytest.mark.parametrize("params", PERIODIC_CASES)
def test_periodic_equals_rtdl(params):
    module = periodic(**params)
    reference = rtdl_periodic(module)
    x = torch.randn(300, params["n_features"], generator=torch.Generator().manual_seed(2)) * 3
    torch.testing.assert_close(module(x), reference(x), rtol=1e-6, atol=1e-6)
    module.eval()  # the padded evaluation path too
    torch.testing.assert_close(module(x[:5]), reference(x[:5]), rtol=1e-6, atol=1e-6)


# ------------------------------------------- (b) against a naive loop
@pytest.mark.parametrize("activation", [False, True])
def test_piecewise_linear_equals_naive_loop(activation):
    module = piecewise_linear(activation=activation)
    x = values(RAGGED_BINS, 200)
    expected = naive_piecewise_linear(x, RAGGED_BINS, module)
    np.testing.assert_allclose(module(x).detach().numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("params", PERIODIC_CASES)
def test_periodic_equals_naive_loop(params):
    module = periodic(**params)
    x = torch.randn(100, params["n_features"], generator=torch.Generator().manual_seed(3)) * 3
    expected = naive_periodic(x, module)
    np.testing.assert_allclose(module(x).detach().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_piecewise_linear_starts_linear():
    """TabM's version: the piecewise-linear weight starts at zero."""
    module = PiecewiseLinearEmbedding(RAGGED_BINS, 4)
    assert not module.weight.any()
    x = values(RAGGED_BINS, 50)
    expected = x.unsqueeze(-1) * module.linear_weight + module.linear_bias
    torch.testing.assert_close(module(x), expected)


# ---------------------------------------------- (c) batch invariance
def assert_batch_invariant(module, x):
    """Rows alone, in batches of 7 and 300 give bitwise the rows of one 1000-row batch."""
    module.eval()
    with torch.no_grad():
        full = module(x)
        for i in [0, 5, 599, 999]:
            assert torch.equal(module(x[i : i + 1]), full[i : i + 1]), f"row {i} alone"
        for start in [0, 3, 993]:
            assert torch.equal(module(x[start : start + 7]), full[start : start + 7])
        for start in [0, 11, 700]:
            assert torch.equal(module(x[start : start + 300]), full[start : start + 300])


@pytest.mark.parametrize("d_embedding", [1, 5, 16])
@pytest.mark.parametrize("activation", [False, True])
def test_piecewise_linear_does_not_depend_on_batching(d_embedding, activation):
    module = piecewise_linear(d_embedding=d_embedding, activation=activation)
    assert_batch_invariant(module, values(RAGGED_BINS, 1000))


@pytest.mark.parametrize("params", PERIODIC_CASES)
def test_periodic_does_not_depend_on_batching(params):
    module = periodic(**params)
    x = torch.randn(1000, params["n_features"], generator=torch.Generator().manual_seed(4)) * 3
    assert_batch_invariant(module, x)


def test_periodic_pads_small_batches_in_eval_mode_only():
    module = periodic(**PERIODIC_CASES[1])
    x = torch.randn(3, 3)
    train_out = module(x)
    module.eval()
    torch.testing.assert_close(module(x), train_out, rtol=1e-6, atol=1e-6)
    assert module(x[:1]).shape == (1, 3, 5)
    assert MIN_ROWS >= 64


# ------------------------------------------------------- (d) fit_bins
def test_fit_bins_rejects_a_constant_column():
    X = pd.DataFrame({"a": np.arange(10.0), "b": np.full(10, 3.5)})
    with pytest.raises(ValueError, match=r"X column 'b' has a single distinct value \(3.5\)"):
        fit_bins(X, 4, feature_names=X.columns)


def test_fit_bins_counts_values_equal_in_float32_as_one():
    X = np.column_stack([np.arange(10.0), np.tile([1.0, 1.0 + 1e-12], 5)])
    with pytest.raises(ValueError, match=r"X column '1' has a single distinct value \(1\)"):
        fit_bins(X, 2)


def test_fit_bins_rejects_more_bins_than_distinct_values():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal(50), rng.integers(0, 3, 50)])
    with pytest.raises(
        ValueError,
        match=r"n_bins=4 is larger than the number of distinct values of X column 'c' \(3\)"
        r"\. Lower n_bins to at most 3",
    ):
        fit_bins(X, 4, feature_names=["a", "c"])
    assert len(fit_bins(X, 3)[1]) >= 2  # as many bins as values: fine


@pytest.mark.parametrize("bad, words", [(np.nan, "missing values"), (np.inf, "infinity")])
def test_fit_bins_rejects_nan_and_infinity_as_the_encoder_does(bad, words):
    X = np.column_stack([np.arange(10.0), np.arange(10.0)])
    X[4, 1] = bad
    with pytest.raises(ValueError) as caught:
        fit_bins(X, 4, feature_names=["a", "income"])
    with pytest.raises(ValueError) as encoder:
        _numeric_column(pd.Series(X[:, 1]), "income")
    assert str(caught.value) == str(encoder.value)
    assert "'income'" in str(caught.value) and words in str(caught.value)
    if bad != bad:  # NaN
        assert "SimpleImputer" in str(caught.value)


def test_fit_bins_names_columns_by_position_without_names():
    X = np.column_stack([np.arange(10.0), np.ones(10)])
    with pytest.raises(ValueError, match="X column '1'"):
        fit_bins(X, 2)


@pytest.mark.parametrize("n_bins", [1, 0, 2.5, True, "8"])
def test_fit_bins_checks_n_bins(n_bins):
    with pytest.raises(ValueError, match="n_bins must be an int of at least 2"):
        fit_bins(np.arange(20.0).reshape(10, 2), n_bins)


def test_module_checks_its_arguments_and_input():
    with pytest.raises(ValueError, match=r"bins\[1\] is not strictly increasing"):
        PiecewiseLinearEmbedding([[0.0, 1.0], [0.0, 2.0, 1.0]], 4)
    with pytest.raises(ValueError, match=r"bins\[0\] must be 1-D with at least 2 edges"):
        PiecewiseLinearEmbedding([[0.0]], 4)
    with pytest.raises(ValueError, match=r"bins\[0\] has a value that is not finite"):
        PiecewiseLinearEmbedding([[0.0, np.inf]], 4)
    with pytest.raises(ValueError, match="d_embedding must be a positive int"):
        PiecewiseLinearEmbedding(RAGGED_BINS, 0)
    with pytest.raises(ValueError, match="frequency_scale must be a positive number"):
        PeriodicEmbedding(3, 4, frequency_scale=0.0)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 4\), got \(2, 3\)"):
        PiecewiseLinearEmbedding(RAGGED_BINS, 2)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 3\), got \(3,\)"):
        PeriodicEmbedding(3, 2)(torch.zeros(3))


# ------------------------------------------ (e) fit_bins equals rtdl's
def test_fit_bins_equals_rtdl_compute_bins():
    rtdl = pytest.importorskip("rtdl_num_embeddings")
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [
            rng.standard_normal(500),
            rng.exponential(size=500) * 1e3,
            rng.integers(0, 10, 500),  # 10 values: quantiles coincide
            np.where(rng.random(500) < 0.8, 0.0, rng.standard_normal(500)),  # mostly zeros
        ]
    )
    bins = fit_bins(X, 8)
    expected = rtdl.compute_bins(torch.as_tensor(X), n_bins=8)
    for ours, theirs in zip(bins, expected):
        theirs = np.unique(theirs.numpy().astype(np.float32))
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        assert (np.diff(ours) > 0).all()
    # coinciding quantiles: fewer bins, never empty ones
    assert len(bins[0]) == 9 and len(bins[3]) < 9
    assert bins[0][0] == np.float32(X[:, 0].min()) and bins[0][-1] == np.float32(X[:, 0].max())


# ------------------------------------------------- (f) state_dict
def test_piecewise_linear_state_dict_round_trip():
    module = piecewise_linear()
    state = module.state_dict()
    assert set(state) == {"edges", "last_bin", "weight", "linear_weight", "linear_bias"}
    # built from other bins of the same shape: the bins come from the state_dict
    other_bins = [np.sort(np.asarray(b) * 2 + 1) for b in RAGGED_BINS]
    clone = PiecewiseLinearEmbedding(other_bins, 3)
    clone.load_state_dict(state)
    x = values(RAGGED_BINS, 100)
    assert torch.equal(clone(x), module(x))
    for ours, given in zip(clone.bins, RAGGED_BINS):
        np.testing.assert_array_equal(ours.numpy(), np.asarray(given, dtype=np.float32))
    moved = piecewise_linear().to("meta")
    assert moved.edges.device.type == "meta" and moved._edge_offsets.device.type == "meta"


@pytest.mark.parametrize("lite", [False, True])
def test_periodic_state_dict_round_trip(lite):
    module = periodic(n_features=3, d_embedding=4, n_frequencies=6, lite=lite)
    clone = PeriodicEmbedding(3, 4, n_frequencies=6, lite=lite)
    clone.load_state_dict(module.state_dict())
    x = torch.randn(20, 3)
    assert torch.equal(clone(x), module(x))


# ------------------------------------------------------ (g) gradients
def test_piecewise_linear_gradients_reach_every_bin():
    module = piecewise_linear(d_embedding=2)
    x = values(RAGGED_BINS, 500)  # every bin of every column has rows
    (
        module(x) * torch.randn(500, 4, 2, generator=torch.Generator().manual_seed(8))
    ).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert module.linear_weight.grad.abs().min() > 0
    assert module.linear_bias.grad.abs().min() > 0
    for j, last in enumerate(module.last_bin.tolist()):
        real = module.weight.grad[j, : last + 1]
        assert real.abs().amin(dim=1).min() > 0, f"column {j}: a bin without gradient"
        assert not module.weight.grad[j, last + 1 :].any(), f"column {j}: padding trained"


@pytest.mark.parametrize("lite", [False, True])
def test_periodic_gradients_reach_every_parameter(lite):
    # frequencies of a turn or more: features vary across rows, so every ReLU unit
    # is active for some rows (at sigma=0.01 a unit is active for all rows or none)
    module = periodic(n_features=3, d_embedding=4, n_frequencies=5, frequency_scale=1.0, lite=lite)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(200, 3, generator=generator) * 3
    (module(x) * torch.randn(200, 3, 4, generator=generator)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().min() > 0, f"{name}: an entry without gradient"


# ------------------------------------------------------------ ONNX
class _Scope:
    """The naming half of skl2onnx's Scope that ``GraphBuilder`` uses."""

    def __init__(self):
        self.counts = collections.Counter()

    def get_unique_variable_name(self, hint):
        self.counts[hint] += 1
        return f"{hint}_{self.counts[hint]}"

    get_unique_operator_name = get_unique_variable_name


class _Container:
    """The half of skl2onnx's ModelComponentContainer that ``GraphBuilder`` uses."""

    def __init__(self, opset):
        self.target_opset = opset
        self.nodes, self.initializers = [], []

    def add_initializer(self, name, data_type, shape, content):
        from onnx import TensorProto, helper

        if isinstance(content, TensorProto):
            self.initializers.append(content)
        else:
            self.initializers.append(helper.make_tensor(name, data_type, shape, content))

    def add_node(self, op_type, inputs, outputs, op_domain="", op_version=None, name=None, **kw):
        from onnx import helper

        node = helper.make_node(op_type, inputs, outputs, name=name, domain=op_domain, **kw)
        self.nodes.append(node)


def run_onnx(emitter, module, x, opset):
    """The embedding alone as an ONNX graph, run by onnxruntime on ``x``."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from sk_mmoe._onnx_graph import GraphBuilder

    container = _Container(opset)
    builder = GraphBuilder(_Scope(), container)
    output = emitter(builder, module.eval(), "x")
    graph = onnx.helper.make_graph(
        container.nodes,
        "numeric_embedding",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, x.shape[1]])],
        [
            onnx.helper.make_tensor_value_info(
                output, onnx.TensorProto.FLOAT, [None, x.shape[1], module.d_embedding]
            )
        ],
        initializer=container.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)  # onnxruntime reads IR 8 and later releases
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("activation", [False, True])
@pytest.mark.parametrize("n_rows", [1, 300])
def test_piecewise_linear_onnx_matches_torch(opset, activation, n_rows):
    module = piecewise_linear(d_embedding=5, activation=activation)
    x = values(RAGGED_BINS, n_rows)
    got = run_onnx(emit_piecewise_linear, module, x, opset)
    with torch.no_grad():
        expected = module(x).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("params", PERIODIC_CASES)
@pytest.mark.parametrize("n_rows", [1, 300])
def test_periodic_onnx_matches_torch(opset, params, n_rows):
    module = periodic(**params)
    x = torch.randn(n_rows, params["n_features"], generator=torch.Generator().manual_seed(6)) * 3
    got = run_onnx(emit_periodic, module, x, opset)
    with torch.no_grad():
        expected = module.eval()(x).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
