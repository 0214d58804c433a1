"""Categorical columns (entity embeddings), raw DataFrames and sparse X."""

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import architecture_names
from conftest import fast as _fast
from sklearn.compose import ColumnTransformer
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor
from sk_mmoe.inputs import OTHER, CategoricalEmbedding, InputEncoder, auto_embedding_dim

CITIES = ["paris", "lima", "oslo", "rome", "kyiv"]


def fast(max_epochs=3, **overrides):
    """The tests' tiny network, embedding every categorical column and numbers as numbers.

    This module is about category embeddings and numeric scaling: one-hot
    columns and numeric embeddings (tests/test_one_hot.py,
    tests/test_input_blocks.py) are off unless a test turns them on.
    """
    off = {"one_hot_max_categories": None, "numeric_embedding": None}
    return _fast(max_epochs, **{**off, **overrides})


def _frame(n=400, seed=0):
    """Mixed dtypes; the targets depend on the categorical columns."""
    rng = np.random.RandomState(seed)
    city = rng.choice(CITIES, n)
    device = pd.Categorical(rng.choice(["ios", "android", "web"], n))
    member = rng.rand(n) > 0.5
    age = rng.randint(18, 80, n)
    income = rng.lognormal(10, 0.5, n)  # dollars, 10^4 - 10^5
    effect = pd.Series(city).map(dict(zip(CITIES, [2.0, -1.0, 0.5, 1.5, -2.0]))).to_numpy()
    X = pd.DataFrame(
        {
            "city": pd.Series(city, dtype="string"),
            "device": device,
            "plan": pd.Series(rng.choice(["free", "pro"], n), dtype=object),
            "member": member,
            "age": age,
            "income": income,
        }
    )
    y = pd.DataFrame(
        {
            "spend": effect + 0.02 * (age - 50) + 1.0 * member + rng.normal(0, 0.1, n),
            "clicks": effect * (device == "ios") + np.log(income) - 10 + rng.normal(0, 0.1, n),
        }
    )
    return X, y


@pytest.fixture(scope="module")
def frame():
    return _frame()


@pytest.fixture(scope="module")
def fitted(frame):
    X, y = frame
    return MMoERegressor(**fast(max_epochs=40, lr=0.01)).fit(X, y)


def test_embedding_lookup_equals_one_hot_times_table():
    torch.manual_seed(0)
    cardinalities, dims = [4, 7, 2], [3, 5, 1]
    emb = CategoricalEmbedding(cardinalities, dims)
    codes = torch.stack([torch.randint(0, c, (50,)) for c in cardinalities], dim=1)
    expected = torch.cat(
        [
            torch.nn.functional.one_hot(codes[:, j], c).float() @ emb.table(j)
            for j, c in enumerate(cardinalities)
        ],
        dim=1,
    )
    torch.testing.assert_close(emb(codes), expected, rtol=0, atol=0)
    # code 1 ("other": rare or unseen) starts at zero in every column
    for j in range(len(dims)):
        assert torch.equal(emb.table(j)[OTHER], torch.zeros(dims[j]))


def test_raw_dataframe_fits_and_learns(fitted, frame):
    X, y = frame
    assert list(fitted.is_categorical_) == [True, True, True, True, False, False]
    assert set(fitted.categories_) == {"city", "device", "plan", "member"}
    assert sorted(fitted.categories_["city"]) == sorted(CITIES)
    X_test, y_test = _frame(300, seed=1)
    pred = fitted.predict(X_test)
    assert r2_score(y_test, pred, multioutput="raw_values").min() > 0.8


def test_unseen_and_missing_categories_predict_without_error(fitted, frame):
    X, _ = frame
    rows = X.iloc[:4].copy()
    rows["city"] = pd.array(["atlantis", None, pd.NA, "lima"], dtype="string")
    rows["plan"] = ["enterprise", np.nan, "free", "pro"]
    pred = fitted.predict(rows)
    assert np.isfinite(pred).all()
    # every unseen category maps to the same "other" code
    other = rows.copy()
    other["city"] = pd.array(["el dorado", None, pd.NA, "lima"], dtype="string")
    np.testing.assert_array_equal(fitted.predict(other), pred)
    # a missing value is its own category, not "other"
    assert not np.array_equal(pred[0], pred[1])


def test_caller_dataframe_unchanged(frame):
    X, y = frame
    X_before, y_before = X.copy(deep=True), y.copy(deep=True)
    dtypes = X.dtypes.copy()
    MMoERegressor(**fast(max_epochs=1)).fit(X, y).predict(X)
    pd.testing.assert_frame_equal(X, X_before)
    pd.testing.assert_frame_equal(y, y_before)
    pd.testing.assert_series_equal(X.dtypes, dtypes)


def test_predictions_do_not_depend_on_batching(fitted, frame):
    X, _ = frame
    full = fitted.predict(X)
    for start, n in [(0, 1), (3, 7), (10, 64), (5, 200)]:
        np.testing.assert_array_equal(fitted.predict(X.iloc[start : start + n]), full[start:][:n])


def test_categorical_features_by_name_index_and_mask(frame):
    X, y = frame
    numeric = X[["age", "income"]].assign(city_code=pd.factorize(X["city"])[0])
    params = fast(max_epochs=2)
    by_name = MMoERegressor(categorical_features=["city_code"], **params).fit(numeric, y)
    by_index = MMoERegressor(categorical_features=[2], **params).fit(numeric, y)
    by_mask = MMoERegressor(categorical_features=[False, False, True], **params).fit(numeric, y)
    for est in (by_name, by_index, by_mask):
        assert list(est.is_categorical_) == [False, False, True]
    np.testing.assert_array_equal(by_name.predict(numeric), by_index.predict(numeric))
    np.testing.assert_array_equal(by_name.predict(numeric), by_mask.predict(numeric))
    # on a numpy array, indices work too
    arr = MMoERegressor(categorical_features=[2], **params).fit(numeric.to_numpy(), y)
    assert list(arr.is_categorical_) == [False, False, True]


def test_numeric_arrays_behave_as_before():
    rng = np.random.RandomState(0)
    X, Y = rng.normal(size=(100, 4)), rng.normal(size=(100, 2))
    est = MMoERegressor(**fast(max_epochs=2)).fit(X, Y)
    assert est.input_encoder_ is None and est.is_categorical_ is None
    frame = pd.DataFrame(X, columns=list("abcd"))
    from_frame = MMoERegressor(**fast(max_epochs=2)).fit(frame, Y)
    np.testing.assert_array_equal(from_frame.predict(frame), est.predict(X))


def test_embedding_dim_rules(frame):
    X, y = frame
    assert [auto_embedding_dim(n) for n in (2, 4, 10, 100, 10**6)] == [2, 3, 6, 21, 32]
    est = MMoERegressor(embedding_dim={"city": 7}, **fast(max_epochs=1)).fit(X, y)
    dims = dict(zip(est.categories_, est.input_encoder_.embedding_dims_))
    assert dims["city"] == 7
    assert dims["plan"] == auto_embedding_dim(2 + 2)
    est = MMoERegressor(embedding_dim=3, **fast(max_epochs=1)).fit(X, y)
    assert est.input_encoder_.embedding_dims_ == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="embedding_dim names columns \\['nope'\\]"):
        MMoERegressor(embedding_dim={"nope": 3}, **fast(max_epochs=1)).fit(X, y)


def test_rare_categories_share_the_other_code():
    X = pd.DataFrame({"id": ["a"] * 30 + ["b"] * 30 + ["rare1", "rare2"]})
    encoder = InputEncoder([True], {"min_frequency": 5}).fit(X)
    assert list(encoder.categories_[0]) == ["a", "b"]
    codes = encoder.transform(pd.DataFrame({"id": ["a", "b", "rare1", "rare2", "new", None]}))
    assert codes[:, 0].tolist() == [2, 3, OTHER, OTHER, OTHER, 0]


def test_numeric_columns_of_wild_scale_train_like_after_a_scaler():
    rng = np.random.RandomState(0)
    n = 1500
    X = pd.DataFrame(
        {
            "kind": rng.choice(["a", "b", "c"], n),
            "age": rng.randint(18, 90, n).astype(float),
            "dollars": rng.uniform(1e4, 1e5, n),
            "count": rng.poisson(3, n).astype(float),
        }
    )
    y = (
        (X["age"] - 50) / 20
        + (X["dollars"] - 5.5e4) / 2.5e4
        + (X["kind"] == "b")
        + rng.normal(0, 0.1, n)
    )
    train, test = slice(0, 1000), slice(1000, None)
    params = fast(max_epochs=30, lr=0.01)
    raw = MMoERegressor(**params).fit(X[train], y[train])
    scaled = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["age", "dollars", "count"])], remainder="passthrough"
        ).set_output(transform="pandas"),
        MMoERegressor(**params),
    ).fit(X[train], y[train])
    r2_raw = raw.score(X[test], y[test])
    r2_scaled = scaled.score(X[test], y[test])
    unscaled = MMoERegressor(numeric_scaling=None, **params).fit(X[train], y[train])
    assert r2_raw > 0.9 and r2_raw > r2_scaled - 0.02
    assert unscaled.score(X[test], y[test]) < r2_raw - 0.1
    np.testing.assert_allclose(raw.input_encoder_.blocks_[0].mean_[0], X["age"][train].mean())


def test_missing_numeric_values_name_the_imputer(frame):
    X, y = frame
    X = X.assign(age=X["age"].astype(float).where(X.index != 3))
    with pytest.raises(ValueError, match="'age' contains missing values.*SimpleImputer"):
        MMoERegressor(**fast(max_epochs=1)).fit(X, y)


@pytest.mark.parametrize(
    "params, X, match, error",
    [
        ({"categorical_features": ["nope"]}, "frame", "not in X", ValueError),
        ({"categorical_features": [True, False]}, "frame", "has 2 entries", ValueError),
        ({"categorical_features": [9]}, "frame", "outside", ValueError),
        ({"categorical_features": ["a"]}, "array", "no column names", ValueError),
        ({}, "unhashable", "cannot be categories", TypeError),
    ],
)
def test_bad_categorical_input(params, X, match, error, frame):
    frame_X, y = frame
    if X == "frame":
        X = frame_X
    elif X == "array":
        X = frame_X[["age", "income"]].to_numpy()
    else:
        X = frame_X.assign(plan=[[1, 2]] * len(frame_X))
    with pytest.raises(error, match=match):
        MMoERegressor(**fast(max_epochs=1), **params).fit(X, y)


def test_more_categories_than_an_embedding_can_index(monkeypatch, frame):
    import sk_mmoe.inputs._categorical as inputs

    monkeypatch.setattr(inputs, "MAX_CODES", 5)
    X, y = frame
    with pytest.raises(ValueError, match="'city' has 5 categories; an embedding indexes"):
        MMoERegressor(**fast(max_epochs=1)).fit(X, y)


def test_partial_fit_warm_start_keep_the_vocabulary(frame):
    X, y = frame
    est = MMoERegressor(**fast(max_epochs=1)).partial_fit(X.iloc[:200], y.iloc[:200])
    before = {k: v.copy() for k, v in est.categories_.items()}
    newer = X.iloc[200:].assign(city="berlin")
    est.partial_fit(newer, y.iloc[200:])
    for name, cats in before.items():
        np.testing.assert_array_equal(est.categories_[name], cats)
    warm = MMoERegressor(warm_start=True, **fast(max_epochs=1)).fit(X, y)
    warm.fit(newer, y.iloc[200:])
    assert "berlin" not in warm.categories_["city"]


def test_save_load_and_pickle_keep_the_encoding(fitted, frame, tmp_path):
    X, _ = frame
    fitted.save(tmp_path / "m.skmmoe")
    loaded = MMoERegressor.load(tmp_path / "m.skmmoe")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert list(loaded.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(loaded.categories_["city"], fitted.categories_["city"])
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.predict(X), fitted.predict(X))


def _embedding_widths(estimator):
    """The widths of the fitted network's embedding tables, one per categorical column."""
    (embedding,) = [m for m in estimator.module_.modules() if isinstance(m, CategoricalEmbedding)]
    return [tuple(embedding.table(j).shape)[1] for j in range(len(embedding.dims))]


def test_grid_search_over_embedding_dim(frame, fitted):
    X, y = frame
    # the "score" of each fitted candidate is its total embedding width
    search = GridSearchCV(
        MMoERegressor(**fast(max_epochs=2)),
        {"embedding_dim": [2, "auto"]},
        cv=KFold(2),
        scoring=lambda estimator, X, y: float(sum(_embedding_widths(estimator))),
    ).fit(X, y)
    assert list(search.cv_results_["param_embedding_dim"]) == [2, "auto"]
    auto = sum(_embedding_widths(fitted))  # fitted with embedding_dim="auto"
    assert auto != 2 * 4
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], [2 * 4, auto])


def test_column_transformer_with_pandas_output_passes_categories_through(frame, fitted):
    X, y = frame
    pipe = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["age", "income"])], remainder="passthrough"
        ).set_output(transform="pandas"),
        MMoERegressor(**fast(max_epochs=40, lr=0.01)),
    ).fit(X, y)
    est = pipe[-1]
    assert sum(est.is_categorical_) == 4
    assert _embedding_widths(est) == _embedding_widths(fitted)  # the same four embeddings
    # the targets depend on the categories: learnt only if they come through as such
    X_test, y_test = _frame(300, seed=1)
    assert r2_score(y_test, pipe.predict(X_test), multioutput="raw_values").min() > 0.7


def test_classifier_and_multitask_on_raw_frames(frame):
    X, y = frame
    labels = pd.DataFrame({"big": y["spend"] > 0, "kind": np.where(y["clicks"] > 0, "a", "b")})
    clf = MMoEClassifier(**fast(max_epochs=20, lr=0.01)).fit(X, labels)
    assert clf.score(X, labels) > 0.8
    mixed = y.assign(big=labels["big"])
    model = MMoEMultiTask(**fast(max_epochs=2)).fit(X, mixed)
    assert model.task_types_ == ["regression", "regression", "binary"]


def test_sparse_and_dense_give_the_same_predictions():
    rng = np.random.RandomState(0)
    dense = rng.normal(size=(300, 50)) * (rng.rand(300, 50) < 0.1)
    Y = dense[:, :2] @ [[1.0, 0.5], [0.5, 1.0]] + rng.normal(0, 0.1, (300, 2))
    params = fast(max_epochs=3)
    a = MMoERegressor(**params).fit(dense, Y)
    for container in (sp.csr_matrix, sp.csc_matrix, sp.coo_array):
        b = MMoERegressor(**params).fit(container(dense), Y)
        np.testing.assert_array_equal(b.predict(container(dense)), a.predict(dense))
        np.testing.assert_array_equal(b.predict(dense), a.predict(dense))
    early = MMoERegressor(early_stopping=True, **params)
    early.fit(sp.csr_matrix(dense), Y)
    np.testing.assert_array_equal(
        early.predict(sp.csr_matrix(dense)),
        MMoERegressor(early_stopping=True, **params).fit(dense, Y).predict(dense),
    )


@pytest.mark.parametrize("kind", ["categorical", "sparse"])
def test_crashed_fit_resumes_bitwise(kind, frame, tmp_path):
    from skorch.callbacks import Callback

    from sk_mmoe.callbacks import TrainingCheckpoint, resume_fit

    class Crash(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 3:
                raise RuntimeError("power loss")

    X, y = frame
    if kind == "sparse":
        rng = np.random.RandomState(0)
        X = sp.csr_matrix(rng.normal(size=(len(y), 30)) * (rng.rand(len(y), 30) < 0.2))
    path = tmp_path / "fit.ckpt"
    params = fast(max_epochs=5, dropout=0.1)
    with pytest.raises(RuntimeError, match="power loss"):
        MMoERegressor(callbacks=[Crash(), TrainingCheckpoint(path)], **params).fit(X, y)
    resumed = resume_fit(MMoERegressor(**params), path, X, y)
    expected = MMoERegressor(**params).fit(X, y)
    np.testing.assert_array_equal(resumed.predict(X), expected.predict(X))


@pytest.mark.parametrize("architecture", architecture_names())
def test_every_architecture_embeds_categorical_columns(architecture, frame, tmp_path):
    X, y = frame
    est = MMoERegressor(architecture=architecture, **fast(max_epochs=1)).fit(X, y)
    pred = est.predict(X)
    np.testing.assert_array_equal(est.predict(X.iloc[5:9]), pred[5:9])
    if est.module_.has_gates:
        summary = est.gate_summary(X)
        assert list(summary.columns[: len(est.expert_names_)]) == list(est.expert_names_)
    est.save(tmp_path / "m.skmmoe")
    np.testing.assert_array_equal(MMoERegressor.load(tmp_path / "m.skmmoe").predict(X), pred)
