"""Settings shared by the test modules.

``fast(...)`` gives the small, seeded network most tests fit; the
architecture lists come from the registry, so a newly registered
architecture is covered by every test parametrized over them.
"""

from sk_mmoe.architectures import ARCHITECTURES

#: a small seeded network: fits in a fraction of a second
TINY = {"random_state": 0, "expert_units": (8,), "tower_units": (4,)}


def fast(max_epochs=3, **overrides):
    """Hyperparameters of a tiny, seeded network trained ``max_epochs`` epochs."""
    return {**TINY, "max_epochs": max_epochs, **overrides}


def architecture_names():
    """Every registered architecture."""
    return sorted(ARCHITECTURES)


def gated_architectures():
    """The registered architectures whose networks have gates."""
    return sorted(name for name, arch in ARCHITECTURES.items() if arch.has_gates)
