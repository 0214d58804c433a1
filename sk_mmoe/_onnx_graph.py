"""ONNX emitters: each torch module class of the networks, written as ONNX nodes.

Every module class the architectures are built from has one small emitter
registered in ``EMITTERS`` (module class -> function). An emitter receives a
:class:`GraphBuilder`, the module (in eval mode) and the name of its input
tensor, adds the nodes that compute the module's eval-mode ``forward`` and
returns the name of the output tensor. :func:`emit` dispatches on the
module's class (the nearest registered class in its MRO), so a new
architecture needs one emitter registered with :func:`register_emitter`
(see CONTRIBUTING.md). Shapes use the letters of ``sk_mmoe.nn._modules``.

This module needs ``onnx`` and is only imported by :mod:`sk_mmoe.onnx`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from ._task_types import BINARY, REGRESSION
from .inputs import INPUT_BLOCKS, InputNetwork
from .nn._ensemble import EnsembleNetwork
from .nn._modules import BatchedLinear, BatchedMLP

#: the lowest ONNX opset the emitters write (Unsqueeze, Split, ReduceSum and
#: Softmax take their current forms in opset 13)
MIN_OPSET = 13


class GraphBuilder:
    """Adds nodes and constants to a skl2onnx container under unique names.

    Parameters
    ----------
    scope : skl2onnx Scope
        Gives unique variable and node names.
    container : skl2onnx ModelComponentContainer
        Receives the nodes and initializers.
    """

    def __init__(self, scope, container):
        self.scope = scope
        self.container = container
        self.opset = container.target_opset or MIN_OPSET

    def name(self, hint):
        """A fresh tensor name starting with ``hint``."""
        return self.scope.get_unique_variable_name(hint)

    def const(self, value, hint, dtype=None):
        """An initializer holding ``value`` (numpy array, tensor or list); its name."""
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        if array.dtype.kind in "UO":
            self.container.add_initializer(
                name,
                TensorProto.STRING,
                list(array.shape),
                [str(v).encode("utf-8") for v in array.ravel()],
            )
        else:
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
            self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)
        return name

    def node(self, op_type, inputs, hint=None, *, output=None, domain="", version=None, **attrs):
        """Add one node; the name of its output (``output`` if given, else a fresh one)."""
        output = output or self.name(hint or op_type.lower())
        self.container.add_node(
            op_type,
            list(inputs),
            [output],
            op_domain=domain,
            op_version=version,
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return output

    def shape(self, dims, hint="shape"):
        """An int64 constant, e.g. for ``Reshape`` and ``Expand``."""
        return self.const(np.asarray(dims, dtype=np.int64), hint)

    def slice(self, x, start, end, axis, hint="slice"):
        """``x[..., start:end, ...]`` along ``axis``."""
        return self.node(
            "Slice",
            [x, self.shape([start]), self.shape([end]), self.shape([axis])],
            hint,
        )

    def linear(self, x, weight, bias, hint="linear"):
        """``x @ weight.T + bias`` for ``x`` of shape ``(B, in)``: one Gemm."""
        w = self.const(weight, f"{hint}_weight", np.float32)
        b = self.const(bias, f"{hint}_bias", np.float32)
        return self.node("Gemm", [x, w, b], hint, transB=1)


#: module class -> emitter ``(builder, module, input name) -> output name``
EMITTERS: dict = {}


def register_emitter(module_class):
    """Decorator: register the decorated function as ``module_class``'s emitter.

    Parameters
    ----------
    module_class : type
        A torch module class.

    Returns
    -------
    decorator : callable
        Registers and returns the function it decorates.
    """

    def decorator(function):
        EMITTERS[module_class] = function
        return function

    return decorator


def emit(builder, module, x):
    """The output name of ``module``'s eval-mode forward on the tensor named ``x``.

    Parameters
    ----------
    builder : GraphBuilder
        Where the nodes go.
    module : torch.nn.Module
        A module whose class (or a base class) has a registered emitter.
    x : str
        Name of the input tensor.

    Returns
    -------
    name : str
        Name of the output tensor.
    """
    own = getattr(module, "emit_onnx", None)
    if own is not None:  # an architecture writes itself (MultiTaskModule's contract)
        return own(builder, x)
    for klass in type(module).__mro__:
        if klass in EMITTERS:
            return EMITTERS[klass](builder, module, x)
    raise TypeError(
        f"sk_mmoe cannot write {type(module).__name__} to ONNX: no emitter is registered "
        "for it (see sk_mmoe._onnx_graph.register_emitter)."
    )


# ----------------------------------------------------------- activations
def _unary(op_type, **attrs):
    def emitter(builder, module, x):
        return builder.node(op_type, [x], op_type.lower(), **attrs)

    return emitter


for _klass, _op in [(nn.ReLU, "Relu"), (nn.Tanh, "Tanh"), (nn.Sigmoid, "Sigmoid")]:
    register_emitter(_klass)(_unary(_op))


@register_emitter(nn.Identity)
@register_emitter(nn.Dropout)
def _identity(builder, module, x):
    return x  # dropout is the identity in eval mode


@register_emitter(nn.ELU)
def _elu(builder, module, x):
    return builder.node("Elu", [x], "elu", alpha=float(module.alpha))


@register_emitter(nn.SELU)
def _selu(builder, module, x):
    return builder.node("Selu", [x], "selu")  # ONNX's defaults are torch's constants


@register_emitter(nn.LeakyReLU)
def _leaky_relu(builder, module, x):
    return builder.node("LeakyRelu", [x], "leaky_relu", alpha=float(module.negative_slope))


@register_emitter(nn.SiLU)
def _silu(builder, module, x):
    return builder.node("Mul", [x, builder.node("Sigmoid", [x], "sigmoid")], "silu")


@register_emitter(nn.GELU)
def _gelu(builder, module, x):
    if builder.opset >= 20:
        return builder.node("Gelu", [x], "gelu", approximate=module.approximate)
    if module.approximate != "none":
        raise ValueError("GELU(approximate='tanh') needs ONNX opset 20 or later.")
    # x * (1 + erf(x / sqrt 2)) / 2, torch's exact GELU
    scaled = builder.node("Mul", [x, builder.const(np.float32(1 / math.sqrt(2)), "c")])
    one_plus = builder.node(
        "Add", [builder.node("Erf", [scaled]), builder.const(np.float32(1), "c")]
    )
    half = builder.node("Mul", [x, builder.const(np.float32(0.5), "c")])
    return builder.node("Mul", [half, one_plus], "gelu")


# ---------------------------------------------------------- linear maps
@register_emitter(nn.Linear)
def _linear(builder, module, x):
    """``(B, in)`` -> ``(B, out)``."""
    return builder.linear(x, module.weight, module.bias)


def batched_linear_kfirst(builder, layer, x):
    """A :class:`BatchedLinear` on ``(k, B, in)``, giving ``(k, B, out)``."""
    weight = builder.const(layer.weight, "batched_weight", np.float32)  # (k, in, out)
    bias = builder.const(layer.bias.unsqueeze(1), "batched_bias", np.float32)  # (k, 1, out)
    return builder.node("Add", [builder.node("MatMul", [x, weight]), bias], "batched_linear")


@register_emitter(BatchedLinear)
def _batched_linear(builder, layer, x):
    """``(B, k, in)`` -> ``(B, k, out)``."""
    kfirst = builder.node("Transpose", [x], perm=[1, 0, 2])  # (k, B, in)
    return builder.node(
        "Transpose", [batched_linear_kfirst(builder, layer, kfirst)], perm=[1, 0, 2]
    )


def batched_mlp_kfirst(builder, mlp, x):
    """A :class:`BatchedMLP` with ``shared_input=False`` on ``(k, B, in)``: ``(k, B, out)``."""
    h = emit(builder, mlp.act, batched_linear_kfirst(builder, mlp.first, x))
    for layer in mlp.rest:
        h = emit(builder, mlp.act, batched_linear_kfirst(builder, layer, h))
    return h


def batched_mlp_shared_kfirst(builder, mlp, x):
    """A :class:`BatchedMLP` with ``shared_input=True`` on ``(B, d)``: ``(k, B, out)``."""
    width = mlp.first.out_features // mlp.k
    h = emit(builder, mlp.first, x)  # (B, k * H)
    h = builder.node("Reshape", [h, builder.shape([-1, mlp.k, width])])  # (B, k, H)
    h = emit(builder, mlp.act, h)
    h = builder.node("Transpose", [h], perm=[1, 0, 2])  # (k, B, H)
    for layer in mlp.rest:
        h = emit(builder, mlp.act, batched_linear_kfirst(builder, layer, h))
    return h


@register_emitter(BatchedMLP)
def _batched_mlp(builder, mlp, x):
    """``(B, d)`` (shared input) or ``(B, k, in)`` -> ``(B, k, out)``."""
    if mlp.shared_input:
        h = batched_mlp_shared_kfirst(builder, mlp, x)
    else:
        kfirst = builder.node("Transpose", [x], perm=[1, 0, 2])
        h = batched_mlp_kfirst(builder, mlp, kfirst)
    return builder.node("Transpose", [h], perm=[1, 0, 2])  # (k, B, out) -> (B, k, out)


# ------------------------------------------------------- architectures
def towers(builder, module, mixed):
    """:meth:`MultiTaskModule._towers_forward`: ``(T, R, H)`` -> ``(R, sum C)``.

    ``R`` is ``B``, or ``k * B`` member-major rows for a network with ``k``
    ensemble members, whose adapters scale the tower inputs and scale and
    shift the head outputs.
    """
    k = module.n_members
    n_tasks, width = module.n_tasks, module.heads.weight.shape[2]
    if k > 1:
        # (T, k * B, H) -> (T, k, B, H), times the members' scales (T, k, 1, H)
        n_in = module.tower_scale.shape[3]
        mixed = builder.node("Reshape", [mixed, builder.shape([n_tasks, k, -1, n_in])])
        mixed = builder.node("Mul", [mixed, builder.const(module.tower_scale, "tower_scale")])
        mixed = builder.node("Reshape", [mixed, builder.shape([n_tasks, -1, n_in])])
    hidden = batched_mlp_kfirst(builder, module.towers, mixed) if module.towers else mixed
    out = batched_linear_kfirst(builder, module.heads, hidden)  # (T, R, C_max)
    if k > 1:
        # (T, k * B, C_max) -> (T, k, B, C_max); the members' scales and biases
        out = builder.node("Reshape", [out, builder.shape([n_tasks, k, -1, width])])
        out = builder.node("Mul", [out, builder.const(module.head_scale, "head_scale")])
        out = builder.node("Add", [out, builder.const(module.head_bias, "head_bias")])
        out = builder.node("Transpose", [out], perm=[1, 2, 0, 3])  # (k, B, T, C_max)
    else:
        out = builder.node("Transpose", [out], perm=[1, 0, 2])  # (B, T, C_max)
    out = builder.node("Reshape", [out, builder.shape([-1, n_tasks * width])], "task_outputs")
    if module.out_index is not None:
        out = builder.node("Gather", [out, builder.const(module.out_index, "out_index")], axis=1)
    return out  # (R, sum C)


def expand_to_tasks(builder, module, mixed, n_mixtures):
    """``(G, B, H)`` to ``(T, B, H)``, broadcasting when ``G`` is 1."""
    if n_mixtures == module.n_tasks:
        return mixed
    return builder.node("Expand", [mixed, builder.shape([module.n_tasks, 1, 1])])


@register_emitter(EnsembleNetwork)
def _ensemble_network(builder, module, x):
    """An ensemble: ``(B, d)`` -> every member's rows -> their mean ``(B, sum C)``.

    As :meth:`EnsembleNetwork.average`, each task in its own space; a binary
    task's logit of the mean probability is ``log sum_m p_m - log sum_m
    (1 - p_m)`` with both sums of sigmoids (no cancellation near 0 or 1).
    """
    k, n_features = module.input_scale.shape
    # (B, d) * (k, 1, d) -> (k, B, d) -> (k * B, d)
    scales = builder.const(module.input_scale.unsqueeze(1), "input_scale", np.float32)
    members = builder.node("Mul", [x, scales], "members")
    members = builder.node("Reshape", [members, builder.shape([-1, n_features])])
    out = emit(builder, module.network, members)  # (k * B, sum C)
    total = module.outputs[-1][2]
    out = builder.node("Reshape", [out, builder.shape([k, -1, total])])  # (k, B, sum C)
    axis = builder.shape([0])

    def member_sum(value):  # (k, B, C_t) -> (B, C_t)
        return builder.node("ReduceSum", [value, axis], "member_sum", keepdims=0)

    pieces = []
    for kind, start, stop in module.outputs:
        block = builder.slice(out, start, stop, 2, "member_outputs")  # (k, B, C_t)
        if kind == REGRESSION:
            inverse = builder.const(np.float32(1 / k), "inverse_members")
            pieces.append(builder.node("Mul", [member_sum(block), inverse], "member_mean"))
        elif kind == BINARY:
            positive = member_sum(builder.node("Sigmoid", [block]))
            negative = member_sum(builder.node("Sigmoid", [builder.node("Neg", [block])]))
            log_odds = [builder.node("Log", [positive]), builder.node("Log", [negative])]
            pieces.append(builder.node("Sub", log_odds, "member_logit"))
        else:
            proba = member_sum(builder.node("Softmax", [block], axis=-1))
            log_k = builder.const(np.float32(math.log(k)), "log_members")
            pieces.append(builder.node("Sub", [builder.node("Log", [proba]), log_k]))
    if len(pieces) == 1:
        return pieces[0]
    return builder.node("Concat", pieces, "ensemble_outputs", axis=1)


@register_emitter(InputNetwork)
def _input_network(builder, module, x):
    """The encoded ``(B, n_features)`` -> the network's ``(B, sum C)``, block by block."""
    pieces = []
    for kind, name, start, stop in module.blocks:
        piece = builder.slice(x, start, stop, 1, kind)  # (B, n_encoded) of this block
        if name is not None:
            piece = INPUT_BLOCKS[kind].emit_module(builder, getattr(module, name), piece)
        pieces.append(piece)
    if len(pieces) > 1:
        pieces = [builder.node("Concat", pieces, "network_input", axis=1)]
    return emit(builder, module.network, pieces[0])
