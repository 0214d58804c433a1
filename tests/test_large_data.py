"""Memory of ``fit`` and ``predict`` on data too large to copy casually.

``fit`` trains on a float32 C-contiguous ``X`` (or a read-only memmap of one)
in place; a float64 ``X`` costs one float32 copy. ``predict`` runs in batches,
so its memory is its output plus one batch. numpy's allocations are measured
with ``tracemalloc`` (torch's are not traced, so the in-place check looks at
the data the training callbacks see instead). No timing assertions.
"""

import tracemalloc

import numpy as np
import pytest
from skorch.callbacks import Callback

from sk_mmoe import MMoERegressor

N_ROWS, N_FEATURES = 20_000, 100


class RecordTrainingRows(Callback):
    """Keeps the first training row as skorch hands the data to callbacks."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.first_row_ = X[0][0].numpy()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_ROWS, N_FEATURES), dtype=np.float32)
    Y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3]])
    # import and warm up everything lazily loaded, outside any measurement
    MMoERegressor(max_epochs=1, random_state=0).fit(X[:300], Y[:300]).predict(X[:10])
    return X, Y


def _traced_peak(fn):
    """``(result, peak bytes)`` numpy/Python allocated while ``fn`` ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _recorded_row(reg):
    return next(cb for _, cb in reg.net_.callbacks_ if isinstance(cb, RecordTrainingRows))


def test_fit_trains_on_float32_x_in_place(data):
    X, Y = data[0][:2000], data[1][:2000]
    reg = MMoERegressor(max_epochs=1, callbacks=[RecordTrainingRows()], random_state=0)
    reg.fit(X, Y)
    assert np.shares_memory(_recorded_row(reg).first_row_, X)


def test_fit_trains_on_read_only_memmap_in_place(data, tmp_path):
    X, Y = data[0][:2000], data[1][:2000]
    path = tmp_path / "X.f32"
    X.tofile(path)
    X_map = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    reg = MMoERegressor(max_epochs=1, callbacks=[RecordTrainingRows()], random_state=0)
    reg.fit(X_map, Y)
    assert np.shares_memory(_recorded_row(reg).first_row_, X_map)
    reference = MMoERegressor(max_epochs=1, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(reg.predict(X[:50]), reference.predict(X[:50]))


def _fit_peak_growth(X, Y):
    """Growth of the traced peak of ``fit`` from half of ``X`` to all of it.

    Fixed costs (a gate check on a few rows, buffers) cancel; what is left
    scales with the number of rows.
    """
    half = len(X) // 2
    peaks = [
        _traced_peak(lambda n=n: MMoERegressor(max_epochs=1, random_state=0).fit(X[:n], Y[:n]))[1]
        for n in (half, len(X))
    ]
    return peaks[1] - peaks[0], X[half:].nbytes


def test_fit_float32_makes_no_copy_of_x(data):
    X, Y = data
    growth, x_growth = _fit_peak_growth(X, Y)
    # what scales is O(n_samples * n_tasks): encoded targets, sample weights
    assert growth < 0.25 * x_growth


def test_fit_float64_makes_one_float32_copy_of_x(data):
    X, Y = data
    growth, x_growth = _fit_peak_growth(X.astype(np.float64), Y)
    assert growth < 0.6 * x_growth  # the float32 copy is 0.5


def test_predict_streams_in_batches(data):
    X, Y = data
    reg = MMoERegressor(max_epochs=1, random_state=0).fit(X[:2000], Y[:2000])
    X_big = np.tile(X, (3, 1))  # 60,000 rows, 24 MB
    for X_in in (X_big, X_big.astype(np.float64)):
        pred, peak = _traced_peak(lambda X_in=X_in: reg.predict(X_in))
        assert pred.shape == (len(X_in), 2)
        # the network output and its float64 decoding, never a copy of X
        # (a float32 copy would be 25 times pred.nbytes here)
        assert peak < 4 * pred.nbytes
