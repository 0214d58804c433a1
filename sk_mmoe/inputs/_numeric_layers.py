"""Embeddings of numeric columns: piecewise-linear (with quantile bins) and periodic.

Gorishniy, Rubachev and Babenko (NeurIPS 2022), "On Embeddings for Numerical
Features in Tabular Deep Learning". Each numeric column ``j`` of a row is
mapped to a vector of width ``d_embedding`` by a small function of its own;
all columns are computed together (no Python loop over columns). Both
modules read ``(B, F)`` float32 and give ``(B, F, D)``: ``B`` rows, ``F``
numeric columns, ``D = d_embedding``; ``K`` is a column's number of bins
(piecewise-linear) or of frequencies (periodic).

- :func:`fit_bins` computes each column's quantile bin edges once, from the
  training rows (as scikit-learn's HistGradientBoosting bins its inputs, and
  as ``rtdl_num_embeddings.compute_bins`` does without a target).
- :class:`PiecewiseLinearEmbedding` encodes a value against its column's bins
  and maps the encoding linearly, plus a linear term in the value itself
  (TabM's choice: ``rtdl_num_embeddings.PiecewiseLinearEmbeddings`` with
  ``version="B"`` and no activation by default).
- :class:`PeriodicEmbedding` is PLR: periodic features ``cos`` / ``sin`` of
  trained frequencies, a linear map, ReLU (``rtdl_num_embeddings.PeriodicEmbeddings``).

Predictions for a row never depend on which other rows are in the batch: the
piecewise-linear embedding uses no matrix product at all (a gather per value,
see :class:`PiecewiseLinearEmbedding`), and the periodic one runs its
per-column linear map through ``sk_mmoe.nn._modules._batched_affine`` with at
least ``MIN_ROWS`` rows in evaluation mode.

``emit_piecewise_linear`` and ``emit_periodic`` write each module's
evaluation-mode forward as ONNX nodes (``sk_mmoe._onnx_graph`` conventions:
``(builder, module, input name) -> output name``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..nn._modules import _batched_affine

#: in evaluation mode the periodic embedding's matmul runs on at least this many
#: rows (zero rows added, then dropped): BLAS takes a matrix-vector path (another
#: summation order) for one row, and other kernels for a few rows
MIN_ROWS = 64


# ----------------------------------------------------------------- bins
def fit_bins(X, n_bins, feature_names=None):
    """Quantile bin edges of each column of ``X``, computed once from the training rows.

    Column ``j``'s edges are its quantiles at ``0, 1/n_bins, ..., 1`` (linear
    interpolation, as :func:`numpy.quantile`), rounded to float32 (the
    precision of the network), sorted, with repeated values removed: where
    quantiles coincide (a value shared by many rows) the column simply has
    fewer bins, as in ``rtdl_num_embeddings.compute_bins``. The first edge is
    the column's minimum and the last its maximum; values outside them are
    extrapolated by the first and the last bin.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The numeric columns of the training rows, finite.
    n_bins : int
        The most bins a column gets (at least 2).
    feature_names : sequence of str, optional
        Column names for error messages; the column positions otherwise.

    Returns
    -------
    bins : list of ndarray of float32
        One array per column, strictly increasing, with between 2 and
        ``n_bins + 1`` edges (between 1 and ``n_bins`` bins).

    Raises
    ------
    ValueError
        If a column is missing values or has infinite values, has a single
        distinct value (nothing to bin), or has fewer distinct values than
        ``n_bins`` (values equal as float32 numbers count as one).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_mmoe.inputs._numeric_layers import fit_bins
    >>> X = np.column_stack([np.arange(9.0), [0, 0, 0, 0, 0, 0, 1, 2, 3]])
    >>> [b.tolist() for b in fit_bins(X, n_bins=4)]
    [[0.0, 2.0, 4.0, 6.0, 8.0], [0.0, 1.0, 3.0]]
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 2:
        raise ValueError(f"n_bins must be an int of at least 2, got {n_bins!r}.")
    n_bins = int(n_bins)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    names = (
        [str(n) for n in feature_names]
        if feature_names is not None
        else [str(j) for j in range(X.shape[1])]
    )
    if len(names) != X.shape[1]:
        raise ValueError(f"feature_names has {len(names)} names but X has {X.shape[1]} columns.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"X has no rows or no columns (shape {X.shape}); there is nothing to bin."
        )
    _check_finite(X, names)
    columns = np.sort(X, axis=0)  # (n, F), each column sorted
    # distinct as the network sees them: values equal in float32 are one value
    rounded = columns.astype(np.float32)
    n_distinct = 1 + np.count_nonzero(np.diff(rounded, axis=0), axis=0)  # (F,)
    constant = np.flatnonzero(n_distinct == 1)
    if constant.size:
        j = constant[0]
        raise ValueError(
            f"X column {names[j]!r} has a single distinct value ({rounded[0, j]:g}): one bin, "
            "nothing to embed. Drop the column (it carries no information) before fitting."
        )
    few = np.flatnonzero(n_distinct < n_bins)
    if few.size:
        j = few[0]
        raise ValueError(
            f"n_bins={n_bins} is larger than the number of distinct values of X column "
            f"{names[j]!r} ({n_distinct[j]}). Lower n_bins to at most {n_distinct[few].min()}, "
            "or make the column categorical (categorical_features)."
        )
    # (n_bins + 1, F): every column's quantiles in one call, then float32
    edges = np.quantile(columns, np.linspace(0.0, 1.0, n_bins + 1), axis=0)
    edges = np.sort(edges.astype(np.float32), axis=0)  # float32 rounding keeps the order
    # an edge is kept where it differs from the one before: (n_bins + 1, F) mask
    keep = np.ones(edges.shape, dtype=bool)
    keep[1:] = edges[1:] != edges[:-1]
    # the kept edges column by column (F-major), cut into one array per column
    kept = edges.T[keep.T]
    return np.split(kept, np.cumsum(keep.sum(axis=0))[:-1])


def _check_finite(X, names):
    """The messages ``sk_mmoe.inputs._columns`` gives for NaN, infinity and float32 overflow."""
    bad = np.flatnonzero(np.isnan(X).any(axis=0))
    if bad.size:
        raise ValueError(
            f"X column {names[bad[0]]!r} contains missing values (NaN). Impute them first, "
            "e.g. with sklearn.impute.SimpleImputer in a Pipeline, or make the column "
            "categorical (a missing value is then its own category)."
        )
    bad = np.flatnonzero(np.isinf(X).any(axis=0))
    if bad.size:
        raise ValueError(f"X column {names[bad[0]]!r} contains infinity.")
    limit = np.finfo(np.float32).max
    bad = np.flatnonzero((np.abs(X) > limit).any(axis=0))
    if bad.size:
        raise ValueError(
            f"X column {names[bad[0]]!r} has values beyond the float32 range (|x| > {limit:.3g})."
        )


def _check_bins(bins):
    """``bins`` as float32 tensors: a non-empty list, each finite and strictly increasing."""
    if isinstance(bins, (np.ndarray, torch.Tensor)) or not isinstance(bins, Sequence) or not bins:
        raise ValueError("bins must be a non-empty list of 1-D arrays of edges, one per column.")
    out = []
    for j, edges in enumerate(bins):
        # on the CPU even under a meta device (a file's network is sized on one)
        edges = torch.as_tensor(edges, dtype=torch.float32, device="cpu").detach()
        if edges.ndim != 1 or len(edges) < 2:
            raise ValueError(
                f"bins[{j}] must be 1-D with at least 2 edges (one bin), got shape "
                f"{tuple(edges.shape)}."
            )
        if not torch.isfinite(edges).all():
            raise ValueError(f"bins[{j}] has a value that is not finite.")
        if not (edges[1:] > edges[:-1]).all():
            raise ValueError(f"bins[{j}] is not strictly increasing (as float32).")
        out.append(edges)
    return out


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def _check_input(x, n_features, name):
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"{name} expects input of shape (B, {n_features}), got {tuple(x.shape)}.")


# ----------------------------------------------------- piecewise-linear
class PiecewiseLinearEmbedding(nn.Module):
    """Piecewise-linear embedding of each numeric column against its bins.

    Column ``j`` with edges ``e_0 < ... < e_n`` (``n`` bins) encodes a value
    ``x`` as the ``n`` numbers ``[1, ..., 1, t, 0, ..., 0]``: ones for the
    bins below ``x``'s bin ``k``, ``t = (x - e_k) / (e_{k+1} - e_k)`` for bin
    ``k`` itself, zeros above (the first bin's ``t`` may be negative and the
    last's above 1: values outside the edges are extrapolated; a column of
    one bin is min-max scaled). The embedding is that encoding times the
    column's weight ``(n, D)``, plus a linear term in ``x``::

        out[j] = x * linear_weight[j] + linear_bias[j] + sum_i enc_i * weight[j, i]

    This is ``rtdl_num_embeddings.PiecewiseLinearEmbeddings(bins, D,
    version="B", activation=False)``, TabM's default (Gorishniy et al.
    2024): the piecewise-linear weight starts at zero, so the embedding
    starts as a linear one and learns its bends. ``activation=True`` applies
    ReLU to the piecewise-linear term (before the linear term is added), as
    rtdl does.

    Computation: since the encoding is ones up to bin ``k``, the product is
    ``P[j, k] + t * weight[j, k]`` with ``P[j, k] = sum_{i<k} weight[j, i]``
    (a cumulative sum over the bins). So each value costs a binary search of
    its column's edges and two gathers of ``D`` numbers, for all columns at
    once (columns with fewer bins are padded: edges with ``+inf``, weights
    with rows never read), and no matrix product: a row's output is the same
    whichever rows come with it.

    Parameters
    ----------
    bins : list of array-like
        Each column's edges, strictly increasing, at least 2 (as returned
        by :func:`fit_bins`).
    d_embedding : int
        Width ``D`` of each column's embedding.
    activation : bool, default=False
        Apply ReLU to the piecewise-linear term.

    Attributes
    ----------
    edges : torch.Tensor of shape (F, K + 1)
        Buffer: column ``j``'s edges, then ``+inf`` up to ``K + 1``, with
        ``K`` the most bins of any column.
    last_bin : torch.Tensor of shape (F,)
        Buffer (int64): each column's number of bins minus one.
    weight : torch.nn.Parameter of shape (F, K, D)
        Row ``i`` of column ``j`` weighs the encoding of bin ``i`` (rows
        past the column's bins are padding, never read); zeros at first.
    linear_weight, linear_bias : torch.nn.Parameter of shape (F, D)
        The linear term, initialised uniform in ``±1/sqrt(D)``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sk_mmoe.inputs._numeric_layers import PiecewiseLinearEmbedding, fit_bins
    >>> X = np.random.default_rng(0).standard_normal((100, 3))
    >>> module = PiecewiseLinearEmbedding(fit_bins(X, n_bins=8), d_embedding=4)
    >>> module.weight.shape
    torch.Size([3, 8, 4])
    >>> module(torch.randn(5, 3)).shape
    torch.Size([5, 3, 4])
    """

    def __init__(self, bins, d_embedding: int, *, activation: bool = False):
        super().__init__()
        bins = _check_bins(bins)
        d_embedding = _check_positive_int(d_embedding, "d_embedding")
        n_features = len(bins)
        n_bins = [len(b) - 1 for b in bins]
        max_bins = max(n_bins)
        edges = torch.full((n_features, max_bins + 1), float("inf"))
        for j, b in enumerate(bins):  # building the padded buffer once, not per forward
            edges[j, : len(b)] = b
        self.register_buffer("edges", edges)  # (F, K + 1)
        self.register_buffer("last_bin", torch.tensor(n_bins, dtype=torch.long) - 1)  # (F,)
        # where column j starts in the flattened (F * (K + 1)) edges and (F * K) weights
        columns = torch.arange(n_features)
        self.register_buffer("_edge_offsets", columns * (max_bins + 1), persistent=False)
        self.register_buffer("_weight_offsets", columns * max_bins, persistent=False)
        bound = d_embedding**-0.5
        self.linear_weight = nn.Parameter(torch.empty(n_features, d_embedding))
        self.linear_bias = nn.Parameter(torch.empty(n_features, d_embedding))
        nn.init.uniform_(self.linear_weight, -bound, bound)
        nn.init.uniform_(self.linear_bias, -bound, bound)
        self.weight = nn.Parameter(torch.zeros(n_features, max_bins, d_embedding))
        self.activation = bool(activation)

    @property
    def n_features(self) -> int:
        """Number of columns ``F``."""
        return self.edges.shape[0]

    @property
    def d_embedding(self) -> int:
        """Width ``D`` of each column's embedding."""
        return self.weight.shape[2]

    @property
    def bins(self) -> list[torch.Tensor]:
        """Each column's edges (1-D tensors, without the padding)."""
        return [row[: int(k) + 2] for row, k in zip(self.edges, self.last_bin)]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each value's bin and its position in it.

        Parameters
        ----------
        x : torch.Tensor of shape (B, F)
            Values.

        Returns
        -------
        bin : torch.Tensor of shape (B, F)
            int64: the bin ``k`` of each value, clamped to the column's bins
            (0 below the first edge, the last bin above the last edge).
        t : torch.Tensor of shape (B, F)
            ``(x - e_k) / (e_{k+1} - e_k)``: in ``[0, 1]`` inside the edges.
        """
        _check_input(x, self.n_features, type(self).__name__)
        # the edges at most x, column by column: (B, F) -> (F, B) -> (B, F)
        count = torch.searchsorted(self.edges, x.t().contiguous(), right=True).t()
        bin_ = torch.minimum((count - 1).clamp_min(0), self.last_bin)  # (B, F)
        at = bin_ + self._edge_offsets  # (B, F): positions in the flattened edges
        flat = self.edges.view(-1)  # (F * (K + 1),)
        left = flat[at]
        t = (x - left) / (flat[at + 1] - left)  # (B, F)
        return bin_, t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` values to ``(B, F, D)`` embeddings."""
        bin_, t = self.encode(x)
        n_features, max_bins, width = self.weight.shape
        # P[j, k] = sum of rows i < k of weight[j]: (F, K, D), then flat (F * K, D)
        below = torch.cat(
            [self.weight.new_zeros(n_features, 1, width), self.weight[:, :-1].cumsum(1)], dim=1
        ).view(-1, width)
        at = bin_ + self._weight_offsets  # (B, F): rows of the flattened (F * K, D) tables
        # (B, F, D) + (B, F, 1) * (B, F, D)
        out = below[at] + t.unsqueeze(-1) * self.weight.view(-1, width)[at]
        if self.activation:
            out = torch.relu(out)
        # the linear term: (B, F, 1) * (F, D) + (F, D) -> (B, F, D)
        return x.unsqueeze(-1) * self.linear_weight + self.linear_bias + out


# -------------------------------------------------------------- periodic
class PeriodicEmbedding(nn.Module):
    """PLR embedding of each numeric column: periodic, linear, ReLU.

    Column ``j``'s value ``x`` gives the ``2K`` features
    ``cos(2 pi c_j x), sin(2 pi c_j x)`` for its ``K`` trained frequencies
    ``c_j``, then a linear map to ``D`` numbers (each column its own, or one
    shared by all with ``lite=True``) and ReLU. This is
    ``rtdl_num_embeddings.PeriodicEmbeddings(F, D, n_frequencies=K,
    frequency_init_scale=frequency_scale, lite=lite)``.

    All columns run together: the periodic features of every column in one
    elementwise pass, the per-column maps in one batched matmul
    ``(F, B, 2K) x (F, 2K, D)``. In evaluation mode fewer than ``MIN_ROWS``
    rows are padded with zero rows for that matmul (and dropped after), so
    that a row's output does not depend on how many rows come with it.

    Parameters
    ----------
    n_features : int
        Number of columns ``F``.
    d_embedding : int
        Width ``D`` of each column's embedding.
    n_frequencies : int, default=48
        Frequencies ``K`` per column.
    frequency_scale : float, default=0.01
        Standard deviation ``sigma`` of the frequencies at initialisation
        (normal, truncated at ``3 sigma``); the paper's most important
        hyperparameter of this embedding.
    lite : bool, default=False
        One linear map shared by all columns instead of one per column.

    Attributes
    ----------
    frequencies : torch.nn.Parameter of shape (F, K)
        Each column's frequencies.
    weight : torch.nn.Parameter of shape (F, 2K, D), or (2K, D) if lite
        The linear map from ``[cos, sin]`` features to the embedding,
        initialised uniform in ``±1/sqrt(2K)``.
    bias : torch.nn.Parameter of shape (F, D), or (D,) if lite
        Its bias, initialised the same way.

    Examples
    --------
    >>> import torch
    >>> from sk_mmoe.inputs._numeric_layers import PeriodicEmbedding
    >>> module = PeriodicEmbedding(3, d_embedding=8, n_frequencies=16)
    >>> module.weight.shape
    torch.Size([3, 32, 8])
    >>> module(torch.randn(5, 3)).shape
    torch.Size([5, 3, 8])
    """

    def __init__(
        self,
        n_features: int,
        d_embedding: int,
        *,
        n_frequencies: int = 48,
        frequency_scale: float = 0.01,
        lite: bool = False,
    ):
        super().__init__()
        n_features = _check_positive_int(n_features, "n_features")
        d_embedding = _check_positive_int(d_embedding, "d_embedding")
        n_frequencies = _check_positive_int(n_frequencies, "n_frequencies")
        if not (isinstance(frequency_scale, numbers.Real) and frequency_scale > 0):
            raise ValueError(
                f"frequency_scale must be a positive number, got {frequency_scale!r}."
            )
        self.frequency_scale = float(frequency_scale)
        self.lite = bool(lite)
        self.frequencies = nn.Parameter(torch.empty(n_features, n_frequencies))
        sigma = self.frequency_scale
        nn.init.trunc_normal_(self.frequencies, 0.0, sigma, a=-3 * sigma, b=3 * sigma)
        shape = () if self.lite else (n_features,)
        self.weight = nn.Parameter(torch.empty(*shape, 2 * n_frequencies, d_embedding))
        self.bias = nn.Parameter(torch.empty(*shape, d_embedding))
        bound = (2 * n_frequencies) ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    @property
    def n_features(self) -> int:
        """Number of columns ``F``."""
        return self.frequencies.shape[0]

    @property
    def d_embedding(self) -> int:
        """Width ``D`` of each column's embedding."""
        return self.weight.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F)`` values to ``(B, F, D)`` embeddings."""
        _check_input(x, self.n_features, type(self).__name__)
        n_rows = x.shape[0]
        x = x.t()  # (B, F) -> (F, B)
        if not self.training and n_rows < MIN_ROWS:
            x = nn.functional.pad(x, (0, MIN_ROWS - n_rows))  # (F, MIN_ROWS)
        # (F, 1, K) * (F, B, 1) -> (F, B, K); 2 pi c first, as rtdl
        angle = (2 * math.pi * self.frequencies).unsqueeze(1) * x.unsqueeze(2)
        features = torch.cat([torch.cos(angle), torch.sin(angle)], dim=2)  # (F, B, 2K)
        if self.lite:
            # one map for all columns: (F, B, 2K) -> (1, F * B, 2K) -> (1, F * B, D)
            n_features, batch = features.shape[:2]
            out = _batched_affine(
                features.reshape(1, n_features * batch, -1), self.weight[None], self.bias[None]
            ).view(n_features, batch, -1)  # (F, B, D)
        else:
            out = _batched_affine(features, self.weight, self.bias)  # (F, B, D)
        # drop the padding rows; (F, B, D) -> (B, F, D)
        return torch.relu(out[:, :n_rows]).transpose(0, 1)


# ------------------------------------------------------------------ ONNX
def emit_piecewise_linear(builder, module, x):
    """ONNX nodes for :class:`PiecewiseLinearEmbedding`: ``(B, F)`` -> ``(B, F, D)``.

    The same computation as the torch module: each value's bin by counting
    the edges at most the value (``searchsorted``), two gathers of ``D``
    numbers, no matrix product.

    Parameters
    ----------
    builder : sk_mmoe._onnx_graph.GraphBuilder
        Where the nodes go.
    module : PiecewiseLinearEmbedding
        The module, in evaluation mode.
    x : str
        Name of the float32 input ``(B, F)``.

    Returns
    -------
    name : str
        Name of the output ``(B, F, D)``.
    """
    from onnx import TensorProto

    weight = module.weight.detach()
    n_features, _, width = weight.shape
    # (B, F, 1) >= (F, K + 1) -> (B, F, K + 1) -> count (B, F)
    x3 = builder.node("Unsqueeze", [x, builder.shape([2])], "x_column")
    at_most = builder.node(
        "GreaterOrEqual", [x3, builder.const(module.edges, "edges", np.float32)]
    )
    count = builder.node(
        "ReduceSum",
        [builder.node("Cast", [at_most], to=TensorProto.INT64), builder.shape([2])],
        "edge_count",
        keepdims=0,
    )
    bin_ = builder.node("Sub", [count, builder.const(np.int64(1), "one")])
    bin_ = builder.node("Max", [bin_, builder.const(np.int64(0), "zero")])
    bin_ = builder.node("Min", [bin_, builder.const(module.last_bin, "last_bin")], "bin")
    # t = (x - e_k) / (e_{k+1} - e_k), (B, F)
    flat_edges = builder.const(module.edges.reshape(-1), "flat_edges", np.float32)
    at = builder.node("Add", [bin_, builder.const(module._edge_offsets, "edge_offsets")])
    left = builder.node("Gather", [flat_edges, at], "left", axis=0)
    right = builder.node(
        "Gather",
        [flat_edges, builder.node("Add", [at, builder.const(np.int64(1), "one")])],
        "right",
        axis=0,
    )
    t = builder.node(
        "Div",
        [builder.node("Sub", [x, left]), builder.node("Sub", [right, left])],
        "bin_position",
    )
    # P[j, k] = sum_{i<k} weight[j, i], computed here once: (F * K, D)
    below = torch.cat([weight.new_zeros(n_features, 1, width), weight[:, :-1].cumsum(1)], dim=1)
    at = builder.node("Add", [bin_, builder.const(module._weight_offsets, "weight_offsets")])
    below = builder.node(
        "Gather", [builder.const(below.reshape(-1, width), "below", np.float32), at], axis=0
    )  # (B, F, D)
    slope = builder.node(
        "Gather", [builder.const(weight.reshape(-1, width), "slope", np.float32), at], axis=0
    )  # (B, F, D)
    t3 = builder.node("Unsqueeze", [t, builder.shape([2])])  # (B, F, 1)
    out = builder.node("Add", [below, builder.node("Mul", [t3, slope])], "piecewise")
    if module.activation:
        out = builder.node("Relu", [out])
    # (B, F, 1) * (F, D) + (F, D) + (B, F, D)
    linear = builder.node(
        "Mul", [x3, builder.const(module.linear_weight, "linear_weight", np.float32)]
    )
    linear = builder.node(
        "Add", [linear, builder.const(module.linear_bias, "linear_bias", np.float32)]
    )
    return builder.node("Add", [linear, out], "piecewise_linear_embedding")


def emit_periodic(builder, module, x):
    """ONNX nodes for :class:`PeriodicEmbedding`: ``(B, F)`` -> ``(B, F, D)``.

    Parameters
    ----------
    builder : sk_mmoe._onnx_graph.GraphBuilder
        Where the nodes go.
    module : PeriodicEmbedding
        The module, in evaluation mode.
    x : str
        Name of the float32 input ``(B, F)``.

    Returns
    -------
    name : str
        Name of the output ``(B, F, D)``.
    """
    xt = builder.node("Transpose", [x], perm=[1, 0])  # (F, B)
    xt = builder.node("Unsqueeze", [xt, builder.shape([2])])  # (F, B, 1)
    scaled = (2 * math.pi * module.frequencies.detach()).unsqueeze(1)  # (F, 1, K)
    angle = builder.node("Mul", [builder.const(scaled, "frequencies", np.float32), xt], "angle")
    features = builder.node(
        "Concat",
        [builder.node("Cos", [angle]), builder.node("Sin", [angle])],
        "periodic",
        axis=2,
    )  # (F, B, 2K)
    bias = module.bias.detach()
    if not module.lite:
        bias = bias.unsqueeze(1)  # (F, 1, D)
    # (F, B, 2K) x (F, 2K, D), or x (2K, D) shared
    out = builder.node(
        "MatMul", [features, builder.const(module.weight, "periodic_weight", np.float32)]
    )
    out = builder.node("Add", [out, builder.const(bias, "periodic_bias", np.float32)])
    out = builder.node("Relu", [out])  # (F, B, D)
    return builder.node("Transpose", [out], "periodic_embedding", perm=[1, 0, 2])
