"""Files saved by an earlier version of the package keep loading and predicting.

``tests/data/`` holds models written by ``tests/data/make_fixtures.py`` at file
format version 1, with their input rows and the outputs they gave when saved.
Each must load with today's ``load`` and give the same outputs: labels exactly,
floats to within rounding (different CPUs may round float32 sums differently).
"""

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.persistence._archive import VERSION

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

#: (file stem, estimator class, file format version the fixture was written with)
FIXTURES = [
    ("regressor", MMoERegressor, 1),
    ("classifier", MMoEClassifier, 1),
    ("multitask", MMoEMultiTask, 1),
]


def _record(name):
    with open(os.path.join(DATA, f"{name}.json")) as file:
        return json.load(file)


def _rows(name, record):
    if name == "regressor":
        rows = record["rows"]
        return pd.DataFrame(
            {
                "a": rows["a"],
                "b": rows["b"],
                "color": pd.Categorical(rows["color"], categories=["blue", "green", "red"]),
            }
        )
    return np.asarray(record["rows"])


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("name", "cls", "version"), FIXTURES)
def test_fixture_records_its_format_version(name, cls, version):
    with zipfile.ZipFile(os.path.join(DATA, f"{name}.skmmoe")) as archive:
        document = json.loads(archive.read("estimator.json"))
    assert document["version"] == version == _record(name)["format_version"]
    assert document["class"] == cls.__name__
    assert version <= VERSION


@pytest.mark.parametrize(("name", "cls", "version"), FIXTURES)
def test_fixture_loads_and_predicts_as_saved(name, cls, version):
    record = _record(name)
    model = cls.load(os.path.join(DATA, f"{name}.skmmoe"))
    X = _rows(name, record)

    assert model.n_features_in_ == record["n_features_in_"]
    # version 1 did not record the batch size: batch_size="auto" on 60 rows was 256
    assert model.net_.batch_size == 256
    assert [str(n) for n in model.target_names_] == record["target_names_"]
    if record["classes_"] is not None:
        assert len(model.classes_) == len(record["classes_"])
        for classes, saved in zip(model.classes_, record["classes_"]):
            if saved is None:
                assert classes is None
            else:
                assert classes.tolist() == saved

    predicted = model.predict(X)
    expected = record["predict"]
    if name == "regressor":
        assert predicted.dtype == np.float64
        _close(predicted, expected)
    else:
        kinds = model.target_encoder_.task_types
        for j, kind in enumerate(kinds):
            column = [row[j] for row in expected]
            if kind == "regression":
                _close(predicted[:, j], column)
            else:
                assert predicted[:, j].tolist() == column  # labels: exact, original type
    if "predict_proba" in record:
        probabilities = model.predict_proba(X)
        for block, saved in zip(probabilities, record["predict_proba"]):
            if saved is None:
                assert block is None
            else:
                _close(block, saved)
