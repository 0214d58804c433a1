"""One-hot categorical inputs (``one_hot_max_categories``) and date columns.

The one-hot module against ``numpy.eye``; the assignment of columns to the
one-hot and embedding blocks; predictions under any batching, through save /
load, pickle and onnxruntime; the assignment kept by ``partial_fit`` and
``warm_start``; the default (off) bitwise the model of a file written before
one-hot blocks existed; dates and durations as numeric columns refused.
"""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast as _fast
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sk_mmoe import MMoEMultiTask, MMoERegressor
from sk_mmoe.inputs import MISSING, OTHER, InputEncoder, OneHot

DATA = Path(__file__).parent / "data"
SMALL = ["a", "b", "c"]
BIG = [f"k{i:02d}" for i in range(20)]


def fast(max_epochs=3, **overrides):
    """The tests' tiny network with numbers as numbers (no numeric embedding).

    The estimators' default embeds the numbers of a table; these tests compare
    with models fitted before one-hot blocks, which had none.
    """
    return _fast(max_epochs, **{"numeric_embedding": None, **overrides})


def _frame(n, seed=0):
    """A 3-level category column, a 20-level string column and a number."""
    rng = np.random.RandomState(seed)
    small = rng.choice(SMALL, n)
    big = rng.choice(BIG, n)
    x = rng.normal(size=n)
    X = pd.DataFrame({"small": pd.Series(small, dtype="category"), "big": big, "x": x})
    y = (small == "a") * 1.0 + (np.char.str_len(big.astype(str)) > 0) * x
    return X, y + rng.normal(scale=0.1, size=n)


#: how ``tests/data/categorical_format2.sk_mmoe`` was fitted (before one-hot blocks
#: existed), its predictions on ``_frame(300)[0][:6]`` and its ``state_dict`` keys
FORMAT2 = {"n_experts": 2, "expert_units": (8,), "tower_units": (4,), "max_epochs": 3}
FORMAT2_PREDICTIONS = [
    0.8950656565910755,
    0.9006411244945156,
    0.8823249755932958,
    0.8395037841816576,
    0.7652035307764721,
    0.9019475626919591,
]
FORMAT2_KEYS = [
    "embedding.weight",
    "embedding.column",
    "embedding.width",
    "embedding.base",
    "network.experts.first.weight",
    "network.experts.first.bias",
    "network.gates.weight",
    "network.gates.bias",
    "network.towers.first.weight",
    "network.towers.first.bias",
    "network.heads.weight",
    "network.heads.bias",
]


@pytest.fixture(scope="module")
def frame():
    return _frame(300)


@pytest.fixture(scope="module")
def fitted(frame):
    X, y = frame
    return MMoERegressor(one_hot_max_categories=3, **fast(max_epochs=3)).fit(X, y)


def _one_hot_reference(codes, cardinalities):
    return np.concatenate([np.eye(c)[codes[:, j]] for j, c in enumerate(cardinalities)], axis=1)


# ----------------------------------------------------------------- the module
@pytest.mark.parametrize("seed", range(3))
def test_module_is_a_one_hot_of_each_column(seed):
    rng = np.random.RandomState(seed)
    cardinalities = rng.randint(2, 9, size=rng.randint(1, 6)).tolist()
    codes = np.column_stack([rng.randint(0, c, size=50) for c in cardinalities])
    module = OneHot(cardinalities)
    out = module(torch.tensor(codes, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.shape == (50, sum(cardinalities))
    np.testing.assert_array_equal(out.numpy(), _one_hot_reference(codes, cardinalities))
    assert list(module.parameters()) == [] and list(module.state_dict()) == []


def test_batch_of_one_row():
    out = OneHot([2, 4])(torch.tensor([[1.0, 3.0]]))
    np.testing.assert_array_equal(out.numpy(), [[0, 1, 0, 0, 0, 1]])


# ------------------------------------------------------------- the assignment
def test_few_categories_go_one_hot_the_others_are_embedded(fitted, frame):
    X, _ = frame
    encoder = fitted.input_encoder_
    assert [b.kind for b in encoder.blocks_] == ["numeric", "one_hot", "embedding"]
    assert [c.tolist() for c in encoder.columns_] == [[2], [0], [1]]
    module = fitted.module_
    assert isinstance(module.one_hot, OneHot) and module.one_hot.cardinalities == [5]
    assert module.embedding.cardinalities == [22]
    dim = module.embedding.dims[0]
    assert module.embedding.weight.numel() == 22 * dim
    assert not any(k.startswith("one_hot") for k in module.state_dict())
    # the experts read x, then 5 one-hot positions, then the embedding
    assert module.network.experts.first.weight.shape[1] == 1 + 5 + dim
    assert list(fitted.categories_) == ["small", "big"]
    np.testing.assert_array_equal(fitted.categories_["small"], SMALL)
    assert encoder.embedding_dims_ == [5, dim]
    # the network's input: the one-hot of the codes (0 missing, 1 other, 2 + i)
    new = X.iloc[:4].copy()
    new["small"] = pd.Series(["b", None, "zzz", "a"], dtype=object, index=new.index)
    encoded = encoder.transform(new, fitted.feature_names_in_)
    codes = encoded[:, 1].astype(int)
    assert codes.tolist() == [3, MISSING, OTHER, 2]
    with torch.no_grad():
        inputs = module._inputs(torch.tensor(encoded)).numpy()
    np.testing.assert_array_equal(inputs[:, 1:6], np.eye(5)[codes])


def test_the_order_of_the_columns_does_not_matter(fitted, frame):
    """The encoded matrix is numeric, one-hot, embedding whatever the order of ``X``."""
    X, y = frame
    order = ["x", "big", "small"]
    est = MMoERegressor(one_hot_max_categories=3, **fast(max_epochs=3)).fit(X[order], y)
    assert [c.tolist() for c in est.input_encoder_.columns_] == [[0], [2], [1]]
    np.testing.assert_array_equal(est.predict(X[order]), fitted.predict(X))


def test_predictions_do_not_depend_on_the_batch(fitted, frame):
    X, _ = frame
    full = fitted.predict(X)
    for n in (1, 7, 300):
        for start in range(0, len(X), n)[:5]:
            np.testing.assert_array_equal(
                fitted.predict(X[start : start + n]), full[start : start + n]
            )


def test_counted_after_min_frequency_without_missing_and_other(frame):
    X, y = frame
    X = X.assign(big=np.where(np.arange(len(X)) < 290, "k00", X["big"]))  # 1 frequent + rare
    X.loc[X.index[:5], "small"] = None  # missing is no category
    est = MMoERegressor(one_hot_max_categories=3, min_frequency=5, **fast(max_epochs=1))
    est.fit(X, y)
    encoder = est.input_encoder_
    assert [b.kind for b in encoder.blocks_] == ["numeric", "one_hot"]
    assert encoder.embedding_dims_ == [5, 3]  # small: 3 + 2 codes, big: k00 + 2 codes


def test_a_column_named_in_an_embedding_dim_dict_is_embedded(frame):
    X, y = frame
    est = MMoERegressor(
        one_hot_max_categories=30, embedding_dim={"big": 4}, **fast(max_epochs=1)
    ).fit(X, y)
    blocks = est.input_encoder_.blocks_
    assert [(b.kind, list(b.names)) for b in blocks[1:]] == [
        ("one_hot", ["small"]),
        ("embedding", ["big"]),
    ]
    assert est.input_encoder_.embedding_dims_ == [5, 4]


@pytest.mark.parametrize("limit", [None, 0, 2])
def test_no_column_one_hot_below_its_count(frame, limit):
    X, y = frame
    est = MMoERegressor(one_hot_max_categories=limit, **fast(max_epochs=1)).fit(X, y)
    assert [b.kind for b in est.input_encoder_.blocks_] == ["numeric", "embedding"]


def test_only_one_hot_columns(frame):
    X, y = frame
    X = X[["small", "big"]]
    est = MMoERegressor(one_hot_max_categories=20, **fast(max_epochs=1)).fit(X, y)
    assert [b.kind for b in est.input_encoder_.blocks_] == ["one_hot"]
    assert est.module_.network.experts.first.weight.shape[1] == 5 + 22
    assert np.isfinite(est.predict(X)).all()


def test_negative_limit_is_refused(frame):
    X, y = frame
    with pytest.raises(ValueError, match="one_hot_max_categories"):
        MMoERegressor(one_hot_max_categories=-1).fit(X, y)


# ------------------------------------------------------------ round trips
def test_save_load_and_pickle_keep_predictions(fitted, frame, tmp_path):
    X, _ = frame
    X_new = X.assign(small=["zzz"] * 10 + [None] * 10 + list(X["small"][20:]))
    expected = fitted.predict(X_new)
    fitted.save(tmp_path / "m.skmmoe")
    loaded = MMoERegressor.load(tmp_path / "m.skmmoe")
    clone = pickle.loads(pickle.dumps(fitted))
    for other in (loaded, clone):
        np.testing.assert_array_equal(other.predict(X_new), expected)
        assert [b.kind for b in other.input_encoder_.blocks_] == [
            "numeric",
            "one_hot",
            "embedding",
        ]
        assert [c.tolist() for c in other.input_encoder_.columns_] == [[2], [0], [1]]
        np.testing.assert_array_equal(other.categories_["big"], fitted.categories_["big"])


def test_onnxruntime_reproduces_predict(frame):
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    pytest.importorskip("sk_mmoe.onnx")
    X, y = frame
    X = X.assign(small=X["small"].astype(object))
    targets = pd.DataFrame({"value": y, "is_a": np.where(X["small"] == "a", "yes", "no")})
    model = MMoEMultiTask(one_hot_max_categories=3, gate_collapse_threshold=None, **fast())
    pipe = Pipeline([("model", model)]).fit(X, targets)
    X_test = _frame(40, seed=1)[0].assign(small=lambda d: d["small"].astype(object))
    X_test.loc[X_test.index[:3], "small"] = ["zzz", None, "a"]
    X_test.loc[X_test.index[3:5], "big"] = ["never", None]
    onx = skl2onnx.to_onnx(pipe, X[:1])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        column = X_test[node.name]
        if node.type == "tensor(string)":
            # ONNX strings cannot be None: the empty string stands for missing
            values = column.astype(object).where(column.notna(), "").astype(str).to_numpy()
            feeds[node.name] = values.astype(object).reshape(-1, 1)
        else:
            feeds[node.name] = column.to_numpy(dtype=np.float64).reshape(-1, 1)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    predicted = pipe.predict(X_test)
    np.testing.assert_allclose(
        got["predict_value"].ravel(), predicted[:, 0].astype(float), rtol=1e-5
    )
    np.testing.assert_array_equal(got["predict_is_a"].ravel(), predicted[:, 1])
    np.testing.assert_allclose(got["proba_is_a"], pipe.predict_proba(X_test)[1], atol=1e-5)


# ------------------------------------------------------- incremental fits
def test_partial_fit_and_warm_start_keep_the_assignment(frame):
    X, y = frame
    newer = X.assign(small=pd.Series(np.where(np.arange(len(X)) % 2, "d", "e")))
    est = MMoERegressor(one_hot_max_categories=3, **fast(max_epochs=1)).partial_fit(X, y)
    warm = MMoERegressor(one_hot_max_categories=3, warm_start=True, **fast(max_epochs=1))
    warm.fit(X, y)
    for model, again in ((est, est.partial_fit), (warm, warm.fit)):
        encoder = model.input_encoder_
        again(newer, y)
        assert model.input_encoder_ is encoder
        assert [b.kind for b in encoder.blocks_] == ["numeric", "one_hot", "embedding"]
        np.testing.assert_array_equal(model.categories_["small"], SMALL)
        # "d" and "e" were never seen in the first fit: both are "other"
        d, e = (
            model.predict(X.iloc[:1].assign(small="d")),
            model.predict(X.iloc[:1].assign(small="e")),
        )
        np.testing.assert_array_equal(d, e)
        assert not np.array_equal(d, model.predict(X.iloc[:1].assign(small="a")))


# ----------------------------------------------------- the default is today's
@pytest.mark.parametrize("limit", [None, 0])
def test_off_is_bitwise_the_model_before_one_hot_blocks(frame, limit):
    X, y = frame
    est = MMoERegressor(
        one_hot_max_categories=limit, numeric_embedding=None, random_state=0, **FORMAT2
    ).fit(X, y)
    assert est.predict(X.iloc[:6]).tolist() == FORMAT2_PREDICTIONS
    assert list(est.module_.state_dict()) == FORMAT2_KEYS


def test_a_file_saved_before_one_hot_blocks_loads(frame, tmp_path):
    X, _ = frame
    loaded = MMoERegressor.load(DATA / "categorical_format2.sk_mmoe")
    assert loaded.get_params()["one_hot_max_categories"] is None
    assert loaded.predict(X.iloc[:6]).tolist() == FORMAT2_PREDICTIONS
    assert [b.kind for b in loaded.input_encoder_.blocks_] == ["numeric", "embedding"]
    assert [c.tolist() for c in loaded.input_encoder_.columns_] == [[2], [0, 1]]
    loaded.save(tmp_path / "again.skmmoe")  # written with the block's columns
    again = MMoERegressor.load(tmp_path / "again.skmmoe")
    assert again.predict(X.iloc[:6]).tolist() == FORMAT2_PREDICTIONS


def test_an_encoder_pickled_before_column_lists_unpickles(frame):
    X, y = frame
    est = MMoERegressor(one_hot_max_categories=None, **fast(max_epochs=1)).fit(X, y)
    expected = est.predict(X)
    del est.input_encoder_.columns_  # as pickled before blocks listed their columns
    clone = pickle.loads(pickle.dumps(est))
    assert [c.tolist() for c in clone.input_encoder_.columns_] == [[2], [0, 1]]
    np.testing.assert_array_equal(clone.predict(X), expected)


def test_a_version_1_record_loads():
    record = {
        "is_categorical": [True, False],
        "mean": [1.0],
        "scale": [2.0],
        "embedding_dims": [3],
        "min_frequency": 1,
        "categories": [{"values": ["a", "b"]}],
    }
    encoder = InputEncoder.from_dict(record)
    assert [b.kind for b in encoder.blocks_] == ["numeric", "embedding"]
    assert [c.tolist() for c in encoder.columns_] == [[1], [0]]
    encoded = encoder.transform(pd.DataFrame({"c": ["b", "z"], "x": [3.0, 1.0]}))
    np.testing.assert_array_equal(encoded, [[1.0, 3.0], [0.0, OTHER]])


def _two_block_record(fitted, columns):
    """The fitted encoder's numeric and one-hot blocks over 2 columns, with these column lists."""
    record = fitted.input_encoder_.to_dict()
    record["blocks"] = record["blocks"][:2]
    record["is_categorical"] = [True, False]
    record["blocks"][0]["columns"], record["blocks"][1]["columns"] = columns
    return record


def test_a_valid_column_list_loads(fitted):
    encoder = InputEncoder.from_dict(_two_block_record(fitted, [[1], [0]]))
    assert [c.tolist() for c in encoder.columns_] == [[1], [0]]


@pytest.mark.parametrize(
    "columns",
    [[[1], [1]], [[1], [0, 0]], [[1], []], [[0], [1]], [[1], [0.0]], [[1], [True]], [[1], [2]]],
)
def test_hostile_column_lists_are_refused(columns, fitted):
    with pytest.raises(ValueError, match="input block|cover each column once|do not match"):
        InputEncoder.from_dict(_two_block_record(fitted, columns))


def test_grid_search_over_the_limit(frame):
    X, y = frame
    search = GridSearchCV(
        MMoERegressor(**fast(max_epochs=1)),
        {"one_hot_max_categories": [None, 3]},
        cv=KFold(3),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["one_hot_max_categories"] in (None, 3)


# ------------------------------------------------------------------ dates
TIMES = {
    "datetime": pd.Series(pd.date_range("2020-01-01", periods=300, freq="D")),
    "timezone": pd.Series(pd.date_range("2020-01-01", periods=300, freq="h", tz="Europe/Paris")),
    "timedelta": pd.Series(pd.to_timedelta(np.arange(300), unit="min")),
    "timestamps": pd.Series(list(pd.date_range("2020-01-01", periods=300)), dtype=object),
}


@pytest.mark.parametrize("kind", sorted(TIMES))
@pytest.mark.parametrize("with_categories", [True, False])
def test_dates_and_durations_are_refused_as_numbers(frame, kind, with_categories):
    X, y = frame
    X = X.assign(when=TIMES[kind])
    if not with_categories:
        X = X[["x", "when"]]
    est = MMoERegressor(**fast(max_epochs=1))
    if kind == "timestamps":  # an object column: categorical unless declared otherwise
        est.set_params(categorical_features=["small", "big"] if with_categories else None)
    with pytest.raises(ValueError, match="X column 'when' holds dates, times or durations"):
        est.fit(X, y)


def test_a_date_column_declared_categorical_is_a_category(frame):
    X, y = frame
    X = X.assign(
        day=pd.Series(pd.date_range("2020-01-01", periods=3, freq="D"))
        .iloc[np.arange(300) % 3]
        .to_numpy()
    )
    est = MMoERegressor(categorical_features=["small", "big", "day"], **fast(max_epochs=1))
    est.fit(X, y)
    assert len(est.categories_["day"]) == 3
