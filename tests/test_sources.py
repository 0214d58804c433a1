"""Data sources: rows in memory, and the registry a new source plugs into.

A test-only source registered inside a test (frames held in chunks) is
fitted, predicted and scored through the estimators with no edit to the
package, as ``tests/test_architectures.py`` does for an architecture.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast

from sk_mmoe import MMoERegressor
from sk_mmoe._inference import run_module
from sk_mmoe.data._sources import DATA_SOURCES, InMemorySource, find_source, register_data_source


def test_in_memory_split_is_seeded_and_disjoint():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    targets = np.ones((20, 2), dtype=np.float32)
    source = InMemorySource(X, targets)
    assert source.n_rows == 20
    train, valid = source.datasets(0.25, seed=3)
    again, _ = source.datasets(0.25, seed=3)
    assert len(valid) == 5 and len(train) == 15
    assert torch.equal(train.index, again.index)
    assert not set(train.index.tolist()) & set(valid.index.tolist())
    everything, none = source.datasets(None, seed=3)
    assert none is None and len(everything) == 20
    with pytest.raises(ValueError, match="leaves no training rows"):
        InMemorySource(X[:1], targets[:1]).datasets(0.5, seed=0)


def test_fingerprint_changes_with_rows_targets_and_split():
    X = np.random.RandomState(0).normal(size=(30, 3)).astype(np.float32)
    targets = np.zeros((30, 2), dtype=np.float32)
    base = InMemorySource(X, targets)
    train, _ = base.datasets(0.2, seed=0)
    fingerprint = base.fingerprint(train)
    assert fingerprint == base.fingerprint(base.datasets(0.2, seed=0)[0])
    assert fingerprint != base.fingerprint(base.datasets(0.2, seed=1)[0])  # another split
    changed = X.copy()
    changed[0, 0] += 1
    other = InMemorySource(changed, targets)
    assert fingerprint != other.fingerprint(other.datasets(0.2, seed=0)[0])


class Chunks:
    """Test-only input: a table held as a list of DataFrame chunks."""

    def __init__(self, frames):
        self.frames = frames


class ChunkSource:
    """Test-only data source: chunks concatenated, then fitted as rows in memory."""

    name = "chunks"

    @staticmethod
    def matches(X):
        return isinstance(X, Chunks)

    @staticmethod
    def prepare(run, X, y, sample_weight, hyper):
        frame = pd.concat(X.frames, ignore_index=True)
        return run._in_memory(frame.drop(columns=y), frame[y], sample_weight, hyper)

    @staticmethod
    def outputs(estimator, X, method):
        return np.concatenate(
            [
                run_module(
                    estimator.module_,
                    method,
                    estimator._prepare_X(chunk.drop(columns=estimator.target_names_), reset=False),
                    estimator.net_.device,
                )
                for chunk in X.frames
            ]
        )

    @staticmethod
    def targets(X, y, sample_weight):
        return pd.concat([chunk[y] for chunk in X.frames], ignore_index=True), sample_weight


@pytest.fixture
def chunks():
    register_data_source(ChunkSource)
    yield
    DATA_SOURCES.remove(ChunkSource)


def test_a_registered_source_is_fitted_predicted_and_scored(chunks):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    frame["t"] = frame["a"] * 2 - frame["b"]
    data = Chunks([frame.iloc[:150], frame.iloc[150:]])
    assert find_source(data) is ChunkSource
    model = MMoERegressor(**fast(max_epochs=30, lr=0.01, random_state=0)).fit(data, y=["t"])
    reference = MMoERegressor(**fast(max_epochs=30, lr=0.01, random_state=0))
    reference.fit(frame[["a", "b", "c"]], frame[["t"]])
    np.testing.assert_array_equal(model.predict(data), reference.predict(frame[["a", "b", "c"]]))
    assert model.score(data, ["t"]) == pytest.approx(
        reference.score(frame[["a", "b", "c"]], frame[["t"]])
    )
    assert model.score(data, ["t"]) > 0.5  # it learned (a constant scores 0)
    with pytest.raises(ValueError, match="already registered"):
        register_data_source(ChunkSource)


def test_rows_in_memory_have_no_registered_source():
    assert find_source(np.zeros((3, 2))) is None
    assert find_source(pd.DataFrame({"a": [1.0]})) is None
    assert find_source("some/folder").name == "parquet"
