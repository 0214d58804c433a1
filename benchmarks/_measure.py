"""Clocks, data and prediction timings shared by the benchmark workers (``_systems.py``)."""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np


class Clock:
    """Wall and CPU seconds between ``start`` and ``stop``."""

    def start(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self):
        return {
            "wall": time.perf_counter() - self._wall,
            "cpu": time.process_time() - self._cpu,
        }


def epoch_timer_callback():
    """A skorch callback recording each epoch's wall and CPU time."""
    from skorch.callbacks import Callback

    class EpochClock(Callback):
        def initialize(self):
            self.times = []
            self._clock = Clock()
            return self

        def on_epoch_begin(self, net, **kwargs):
            self._clock.start()

        def on_epoch_end(self, net, **kwargs):
            self.times.append(self._clock.stop())

    return EpochClock()


def timer_of(net):
    """The net's EpochClock (sk_mmoe hands skorch a copy of the one it got)."""
    return next(cb for _, cb in net.callbacks_ if type(cb).__name__ == "EpochClock")


def time_calls(fn, repeats, warmup):
    """Median wall and CPU seconds of single calls of ``fn``."""
    for _ in range(warmup):
        fn()
    clock, times = Clock(), []
    for _ in range(repeats):
        clock.start()
        fn()
        times.append(clock.stop())
    return {k: float(np.median([t[k] for t in times])) for k in ("wall", "cpu")}


@contextlib.contextmanager
def quiet():
    """Silence a peer's prints and progress bars."""
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        yield


def make_data(spec):
    """``make_mmoe_tasks`` data of the spec's ``rows``, ``features`` and ``tasks``."""
    from sk_mmoe.datasets import make_mmoe_tasks

    X, Y = make_mmoe_tasks(
        spec["rows"], n_features=spec["features"], n_tasks=spec["tasks"], random_state=0
    )
    return X, Y


def predict_times(spec, X, predict):
    """One-row and all-rows timings of ``predict`` (none where ``spec["predict"]`` is False)."""
    if not spec.get("predict", True):
        return {}
    one = X[:1].copy()
    return {
        "predict_one": time_calls(lambda: predict(one), spec["one_row_calls"], warmup=20),
        "predict_all": time_calls(lambda: predict(X), spec["predict_repeats"], warmup=1),
    }
