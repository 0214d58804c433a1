"""Settings shared by the test modules.

``fast(...)`` gives the small, seeded network most tests fit; the
architecture lists come from the registry, so a newly registered
architecture is covered by every test parametrized over them.
"""

import contextlib

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


class RecordingAccelerator:
    """Stand-in for ``accelerate.Accelerator`` in one CPU process.

    Implements what ``skorch.hf.AccelerateMixin`` calls and records it;
    ``num_processes`` / ``process_index`` pretend to be one of several.
    """

    device_placement = False
    is_main_process = True

    def __init__(self, num_processes=1, process_index=0):
        self.num_processes = num_processes
        self.process_index = process_index
        self.prepared = []
        self.n_backward = 0

    def prepare(self, obj):
        self.prepared.append(obj)
        return obj

    def accumulate(self, model):
        return contextlib.nullcontext()

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        self.n_backward += 1
        loss.backward()

    def wait_for_everyone(self):
        pass

    def unwrap_model(self, model, keep_fp32_wrapper=True):
        return model

    def gather_for_metrics(self, output):
        return output
