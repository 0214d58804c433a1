"""One fitted model used from many threads at once.

``predict``, ``predict_proba`` and ``gate_weights`` called concurrently give
bitwise the results of serial calls; concurrent ``save`` calls to one path
leave one whole file; concurrent ``load`` calls give identical models.
"""

import os
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from conftest import fast

from sk_mmoe import MMoEMultiTask

RNG = np.random.RandomState(0)
X = RNG.normal(size=(5000, 4))  # more rows than one inference chunk (4096)
Y = pd.DataFrame(
    {
        "value": X[:, 0] * X[:, 1],
        "side": np.where(X[:, 2] > 0, "up", "down"),
        "level": np.digitize(X[:, 3], [-0.5, 0.5]),
    }
)
METHODS = ["predict", "predict_proba", "gate_weights"]
ROWS = [slice(0, 1), slice(0, 10), slice(7, 71), slice(100, 1100), slice(None)]


@pytest.fixture(scope="module")
def model():
    return MMoEMultiTask(**fast(max_epochs=2, dropout=0.2)).fit(X[:500], Y[:500])


def _call(model, method, rows):
    out = getattr(model, method)(X[rows])
    return [o for o in out if o is not None] if isinstance(out, list) else [out]


def test_concurrent_inference_equals_serial(model):
    jobs = [(m, r) for m in METHODS for r in range(len(ROWS))] * 4
    random.Random(0).shuffle(jobs)
    serial = {(m, r): _call(model, m, ROWS[r]) for m, r in set(jobs)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: _call(model, job[0], ROWS[job[1]]), jobs))
    for job, result in zip(jobs, results):
        expected = serial[job]
        assert len(result) == len(expected)
        for a, b in zip(result, expected):
            np.testing.assert_array_equal(a, b, err_msg=str(job))


def test_concurrent_saves_and_loads(model, tmp_path):
    path = tmp_path / "model.skmmoe"
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: model.save(path), range(8)))
    assert os.listdir(tmp_path) == ["model.skmmoe"]
    expected = model.predict(X[:100])
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(pool.map(lambda _: MMoEMultiTask.load(path), range(8)))
    for other in loaded:
        np.testing.assert_array_equal(other.predict(X[:100]), expected)
