"""The architecture registry: the one place that knows which architectures exist.

Each entry maps a name (the estimators' ``architecture`` parameter) to the
torch module that builds it and to the estimator hyperparameters that module
takes. The estimators build their network from here, validate
``architecture`` against it, and ask the fitted module whether it has gates.
Adding an architecture is one module class, one :func:`register_architecture`
call and its tests (see CONTRIBUTING.md).

Examples
--------
>>> from sk_mmoe.architectures import ARCHITECTURES
>>> sorted(ARCHITECTURES)
['cgc', 'mmoe', 'moe', 'ple', 'shared_bottom']
>>> ARCHITECTURES["mmoe"].has_gates, ARCHITECTURES["shared_bottom"].has_gates
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ._gated import MixtureOfExperts
from ._ple import ProgressiveLayeredExtraction
from ._shared_bottom import SharedBottom

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "MixtureOfExperts",
    "ProgressiveLayeredExtraction",
    "SharedBottom",
    "register_architecture",
    "unregister_architecture",
]


@dataclass(frozen=True)
class Architecture:
    """One registry entry: how to build a named architecture.

    Parameters
    ----------
    name : str
        The value of the estimators' ``architecture`` parameter.
    module : type
        A subclass of ``sk_mmoe.nn._modules.MultiTaskModule``, called as
        ``module(n_features, output_widths, **fixed, **{p: value of p})``.
    params : tuple of str
        The estimator hyperparameters passed on to ``module`` under the same
        names (list-valued widths arrive as lists of int).
    fixed : dict
        Constant keyword arguments for ``module`` (e.g. one gate per task).
    description : str
        One line for the documentation.
    """

    name: str
    module: type
    params: tuple = ()
    fixed: dict = field(default_factory=dict)
    description: str = ""

    @property
    def has_gates(self):
        """Whether the architecture's network has gates (``gate_weights``)."""
        return bool(self.module.has_gates)

    def build(self, n_features, output_widths, hyperparameters):
        """The torch module for ``n_features`` inputs and these task outputs.

        Parameters
        ----------
        n_features : int
            Input width.
        output_widths : list of int
            Output width of each task.
        hyperparameters : dict
            Estimator hyperparameters by name; those in ``params`` are used.

        Returns
        -------
        module : torch.nn.Module
            The untrained network.
        """
        return self.module(n_features, output_widths, **self.module_kwargs(hyperparameters))

    def module_kwargs(self, hyperparameters):
        """The keyword arguments ``module`` gets besides the input and output widths.

        Parameters
        ----------
        hyperparameters : dict
            Estimator hyperparameters by name.

        Returns
        -------
        kwargs : dict
            ``fixed`` plus the entries of ``hyperparameters`` named in ``params``.
        """
        return {**self.fixed, **{name: hyperparameters[name] for name in self.params}}


#: name -> :class:`Architecture`; read it, change it only through the functions below
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(architecture):
    """Add an architecture to the registry, making it a valid ``architecture=``.

    Parameters
    ----------
    architecture : Architecture
        The entry; its name must not be registered yet.

    Returns
    -------
    architecture : Architecture
        The same entry.
    """
    if architecture.name in ARCHITECTURES:
        raise ValueError(f"architecture {architecture.name!r} is already registered.")
    if not (isinstance(architecture.module, type) and issubclass(architecture.module, nn.Module)):
        raise TypeError(f"{architecture.module!r} is not a torch module class.")
    ARCHITECTURES[architecture.name] = architecture
    return architecture


def unregister_architecture(name):
    """Remove an architecture from the registry (e.g. one a test registered).

    Parameters
    ----------
    name : str
        A registered architecture name.
    """
    del ARCHITECTURES[name]


_COMMON = ("expert_units", "tower_units", "activation", "dropout")

register_architecture(
    Architecture(
        "mmoe",
        MixtureOfExperts,
        params=("n_experts", *_COMMON, "gate_dropout", "gate_entropy_bonus"),
        fixed={"per_task_gates": True},
        description="Multi-gate Mixture-of-Experts: one softmax gate per task (Ma et al., 2018).",
    )
)
register_architecture(
    Architecture(
        "moe",
        MixtureOfExperts,
        params=("n_experts", *_COMMON, "gate_dropout", "gate_entropy_bonus"),
        fixed={"per_task_gates": False},
        description="One-gate Mixture-of-Experts: one gate shared by all tasks.",
    )
)
register_architecture(
    Architecture(
        "shared_bottom",
        SharedBottom,
        params=_COMMON,
        description="Shared-Bottom: one shared MLP under the task towers.",
    )
)

_PLE = ("n_experts", "n_task_experts", *_COMMON, "gate_dropout", "gate_entropy_bonus")

register_architecture(
    Architecture(
        "cgc",
        ProgressiveLayeredExtraction,
        params=_PLE,
        fixed={"n_levels": 1},
        description="Customized Gate Control: shared and task-specific experts, one gate "
        "per task over the shared experts and its own (Tang et al., 2020).",
    )
)
register_architecture(
    Architecture(
        "ple",
        ProgressiveLayeredExtraction,
        params=("n_levels", *_PLE),
        description="Progressive Layered Extraction: CGC levels stacked n_levels deep, "
        "with a shared gate feeding the next level (Tang et al., 2020).",
    )
)
