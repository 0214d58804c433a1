"""The hyperparameter table against the signatures, docstrings, constraints and file codec.

Every shared hyperparameter is one row of ``HYPERPARAMETERS``; the explicit
``__init__`` signatures (which scikit-learn reads) must list the same names in
the same order with the same defaults, each estimator's docstring must
document every row with its default, and each row's codec must bring a value
back from a saved file's JSON.
"""

import ast
import inspect
import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import validate_parameter_constraints
from skorch.callbacks import EpochTimer

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe._hyperparameters import HYPERPARAMETERS, PARAMETER_CONSTRAINTS
from sk_mmoe.persistence._archive import _params_from_json, _params_to_json

ESTIMATORS = [MMoERegressor, MMoEClassifier, MMoEMultiTask]
#: parameters of one estimator only, before the shared ones: (name, default)
OWN_PARAMETERS = {MMoEMultiTask: [("task_types", "auto")]}
NAMES = [row.name for row in HYPERPARAMETERS]


def _expected(cls):
    return OWN_PARAMETERS.get(cls, []) + [(row.name, row.default) for row in HYPERPARAMETERS]


def _exactly(pairs):
    """(name, repr of value) pairs: 0 is not 0.0 nor False, (4,) is not [4]."""
    return [(name, repr(value)) for name, value in pairs]


class _Accelerator:
    """Enough of ``accelerate.Accelerator`` for the constraints."""

    device_placement = False

    def prepare(self, *objects):
        return objects

    def backward(self, loss):
        loss.backward()


def test_rows_are_unique_and_named_as_the_constraints():
    assert len(set(NAMES)) == len(NAMES)
    assert list(PARAMETER_CONSTRAINTS) == NAMES


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_signature_matches_the_table(cls):
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert _exactly((p.name, p.default) for p in parameters) == _exactly(_expected(cls))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_constraints_match_the_table(cls):
    assert set(cls._parameter_constraints) == {name for name, _ in _expected(cls)}
    for row in HYPERPARAMETERS:
        assert cls._parameter_constraints[row.name] == row.constraints, row.name


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_docstring_documents_every_row_with_its_default(cls):
    docscrape = pytest.importorskip("numpydoc.docscrape")
    documented = docscrape.NumpyDocString(cls.__doc__)["Parameters"]
    assert [p.name for p in documented] == [name for name, _ in _expected(cls)]
    by_name = {p.name: p for p in documented}
    for row in HYPERPARAMETERS:
        kind, default = by_name[row.name].type.rsplit(", default=", 1)
        assert kind == row.doc_type, row.name
        assert repr(ast.literal_eval(default)) == repr(row.default), row.name
        assert "\n".join(by_name[row.name].desc) == inspect.cleandoc(row.doc), row.name


#: a non-default value of each hyperparameter, which a saved file keeps as it is
EXAMPLES = {
    "architecture": "ple",
    "n_experts": 3,
    "n_task_experts": 2,
    "n_levels": 3,
    "categorical_features": ["city", "device"],
    "embedding_dim": {"city": 4},
    "min_frequency": 5,
    "one_hot_max_categories": 4,
    "numeric_scaling": None,
    "numeric_embedding": "piecewise_linear",
    "n_bins": 16,
    "numeric_embedding_dim": 8,
    "frequency_scale": 0.1,
    "expert_units": (32, 16),
    "tower_units": (),
    "n_ensemble": 4,
    "activation": "gelu",
    "dropout": 0.1,
    "gate_dropout": 0.2,
    "gate_entropy_bonus": 0.01,
    "gate_collapse_threshold": None,
    "task_weights": [1.0, 0.5],
    "dwa_temperature": 1.0,
    "gradnorm_alpha": 0.5,
    "track_task_conflict": True,
    "max_epochs": 5,
    "batch_size": 64,
    "lr": 0.01,
    "optimizer": torch.optim.SGD,
    "weight_decay": 1e-4,
    "early_stopping": True,
    "validation_fraction": 0.2,
    "n_iter_no_change": 3,
    "tol": 0.0,
    "missing_targets": "ignore",
    "task_sequence": ["click", "convert"],
    "callbacks": [],
    "device": "cuda:1",
    "accelerator": None,  # never saved: see CHANGED
    "n_jobs": -1,
    "random_state": 42,
    "verbose": 1,
    "warm_start": True,
}

#: values a saved file keeps in another form: (value, what loading gives back,
#: whether saving warns)
CHANGED = {
    "categorical_features": [
        (np.array([0, 2]), [0, 2], False),
        (np.array([True, False, True]), [True, False, True], False),
    ],
    "expert_units": [([16, 8], (16, 8), False), (np.int64(16), 16, False)],
    "tower_units": [([4], (4,), False)],
    "task_weights": [(np.array([1, 2]), [1.0, 2.0], False)],
    "task_sequence": [(("click", "convert"), ["click", "convert"], False)],
    "optimizer": [(torch.optim.AdamW, torch.optim.AdamW, False)],
    "callbacks": [([EpochTimer()], None, True)],
    "device": [(torch.device("cpu"), "cpu", False)],
    "accelerator": [(_Accelerator(), None, True)],
    "random_state": [(np.random.RandomState(0), None, False)],
}


def _through_file(row, value):
    """``value`` written by ``row``'s codec to JSON text and read back."""
    return row.codec.from_json(json.loads(json.dumps(row.codec.to_json(value))))


def test_every_row_has_an_example():
    assert list(EXAMPLES) == NAMES
    assert set(CHANGED) <= set(NAMES)


@pytest.mark.parametrize("row", HYPERPARAMETERS, ids=lambda row: row.name)
def test_codec_round_trips_the_default_and_an_example(row):
    values = [row.default] if row.name == "accelerator" else [row.default, EXAMPLES[row.name]]
    for value in values:
        validate_parameter_constraints(PARAMETER_CONSTRAINTS, {row.name: value}, "test")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            back = _through_file(row, value)
        assert repr(back) == repr(value)
    assert EXAMPLES[row.name] != row.default or row.name == "accelerator"


@pytest.mark.parametrize(
    ("name", "value", "stored", "warns"),
    [
        pytest.param(name, *case, id=f"{name}-{i}")
        for name, cases in CHANGED.items()
        for i, case in enumerate(cases)
    ],
)
def test_codec_stores_other_forms_as_documented(name, value, stored, warns):
    (row,) = [row for row in HYPERPARAMETERS if row.name == name]
    validate_parameter_constraints(PARAMETER_CONSTRAINTS, {name: value}, "test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = _through_file(row, value)
    assert [w.category for w in caught] == ([UserWarning] if warns else [])
    assert repr(back) == repr(stored)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_a_saved_file_gives_back_every_example(cls):
    # every row at a non-default value, or one the file stores in another form
    given = {**EXAMPLES, "device": "cpu"}  # a device this machine has
    expected = {**cls().get_params(deep=False), **given}
    for name, [(value, stored, warns), *_] in CHANGED.items():
        if not warns:  # the callbacks and the accelerator are not saved
            given[name], expected[name] = value, stored
    text = json.dumps(_params_to_json(cls(**given).get_params(deep=False)))
    back = _params_from_json(json.loads(text), cls)
    assert _exactly(back.items()) == _exactly(expected.items())


def test_codec_refuses_an_optimizer_outside_torch_optim():
    (row,) = [row for row in HYPERPARAMETERS if row.name == "optimizer"]

    class Custom(torch.optim.SGD):
        pass

    with pytest.raises(TypeError, match="only names and torch.optim classes"):
        row.codec.to_json(Custom)
