"""Fitting and predicting from Parquet files and pyarrow datasets, streamed in batches."""

import os

import numpy as np
import pandas as pd
import pytest
from conftest import fast

from sk_mmoe import MMoEClassifier, MMoEMultiTask, MMoERegressor

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")


def _frame(n, seed=0):
    rng = np.random.RandomState(seed)
    X = pd.DataFrame(
        {
            "age": rng.uniform(18, 90, n),
            "income": rng.lognormal(10, 1, n),
            "city": pd.Categorical(rng.choice(["paris", "rome", "oslo", "lima"], n)),
        }
    )
    signal = (X["age"] - 50) / 20 + np.log(X["income"]) - 10 + (X["city"] == "rome") * 1.5
    X["spend"] = signal + rng.normal(scale=0.3, size=n)
    X["visits"] = (X["age"] - 50) / 10 + rng.normal(scale=0.3, size=n)
    X["churn"] = np.where(signal + rng.normal(size=n) > 0, "yes", "no")
    X["weight"] = rng.uniform(0.5, 2.0, n)
    return X


def _write(frame, folder, files=3, row_group_size=250):
    os.makedirs(folder, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(
            table, os.path.join(folder, f"part-{i}.parquet"), row_group_size=row_group_size
        )
    return folder


FEATURES = ["age", "income", "city"]
COLUMNS = ["age", "income", "city", "spend", "visits"]


def _only(folder, columns):
    """The dataset of ``folder`` reading ``columns`` only (the others are left out)."""
    schema = ds.dataset(folder, format="parquet").schema
    return ds.dataset(
        folder, format="parquet", schema=pa.schema([schema.field(c) for c in columns])
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frame = _frame(3000)
    folder = _write(frame, tmp_path_factory.mktemp("parquet") / "train")
    return frame, str(folder)


def test_streamed_fit_scores_as_the_fit_in_memory(data):
    frame, folder = data
    params = fast(max_epochs=15, lr=0.01, random_state=0, early_stopping=False)
    streamed = MMoERegressor(**params).fit(_only(folder, COLUMNS), y=["spend", "visits"])
    memory = MMoERegressor(**params).fit(frame[FEATURES], frame[["spend", "visits"]])
    assert list(streamed.feature_names_in_) == FEATURES
    assert list(streamed.target_names_) == ["spend", "visits"]
    streamed_score = streamed.score(frame[FEATURES], frame[["spend", "visits"]])
    memory_score = memory.score(frame[FEATURES], frame[["spend", "visits"]])
    assert memory_score > 0.5
    assert streamed_score == pytest.approx(memory_score, abs=0.05)
    # predict, score on the source itself agree with the in-memory frame
    np.testing.assert_allclose(streamed.predict(folder), streamed.predict(frame[FEATURES]))
    assert streamed.score(folder, y=["spend", "visits"]) == pytest.approx(streamed_score)


def test_a_dataset_object_and_a_single_file(data, tmp_path):
    frame, folder = data
    one = tmp_path / "one.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), one, row_group_size=500)
    params = fast(max_epochs=2, random_state=0)
    a = MMoERegressor(**params).fit(ds.dataset(folder, format="parquet"), y=["spend"])
    b = MMoERegressor(**params).fit(str(one), y="spend")
    # every column but the targets is a feature
    others = [c for c in frame.columns if c != "spend"]
    assert list(a.feature_names_in_) == others
    assert a.predict(frame[others].iloc[:5]).shape == (5, 1)
    assert b.predict(frame[others].iloc[:5]).shape == (5,)  # y named by a string: 1-D


def test_classifier_labels_weights_and_early_stopping(data):
    frame, folder = data
    clf = MMoEClassifier(**fast(max_epochs=30, random_state=0, early_stopping=True)).fit(
        _only(folder, [*FEATURES, "churn", "weight"]), y=["churn"], sample_weight="weight"
    )
    assert clf.classes_[0].tolist() == ["no", "yes"]
    # early stopping held out row groups and recorded validation losses
    assert "valid_loss" in clf.net_.history[-1]
    proba = clf.predict_proba(folder)[0]  # reads the fitted features only
    assert proba.shape == (len(frame), 2)
    accuracy = clf.score(frame[FEATURES], frame[["churn"]])
    assert accuracy > 0.7


def test_the_weight_column_weighs_rows(tmp_path):
    frame = _frame(1200, seed=3)
    # rows of one city carry all the weight: the fit follows them
    frame["weight"] = np.where(frame["city"] == "rome", 1.0, 0.0)
    frame["spend"] = np.where(frame["city"] == "rome", 5.0, -5.0)
    folder = _write(frame, tmp_path / "w")
    model = MMoERegressor(**fast(max_epochs=30, random_state=0, early_stopping=False)).fit(
        _only(str(folder), [*FEATURES, "spend", "weight"]), y=["spend"], sample_weight="weight"
    )
    rest = frame[frame["city"] != "rome"][FEATURES]
    assert model.predict(rest).mean() > 0  # an unweighted fit would predict about -5


def test_missing_labels_behave_as_in_memory(data, tmp_path):
    frame, _ = data
    frame = frame.copy()
    frame.loc[frame.index[::3], "visits"] = np.nan
    folder = _write(frame, tmp_path / "missing")
    with pytest.raises(ValueError, match="missing values .* 'visits'"):
        MMoERegressor(**fast(max_epochs=1)).fit(_only(str(folder), COLUMNS), y=["spend", "visits"])
    model = MMoERegressor(**fast(max_epochs=2, missing_targets="ignore", random_state=0))
    model.fit(_only(str(folder), COLUMNS), y=["spend", "visits"])
    assert np.isfinite(model.predict(frame[FEATURES])).all()


def test_unseen_categories_at_predict_map_to_other(data, tmp_path):
    frame, folder = data
    model = MMoERegressor(**fast(max_epochs=2, random_state=0))
    model.fit(_only(folder, [*FEATURES, "spend"]), y=["spend"])
    new = frame.iloc[:4].copy()
    new["city"] = pd.Categorical(["tokyo"] * 4)
    new_folder = _write(new, tmp_path / "new", files=1)
    np.testing.assert_allclose(model.predict(str(new_folder)), model.predict(new[FEATURES]))


def test_partial_fit_and_multitask_from_a_source(data):
    frame, folder = data
    model = MMoEMultiTask(**fast(random_state=0))
    for _ in range(2):
        model.partial_fit(folder, y=["churn", "spend"])
    assert model.task_types_ == ["binary", "regression"]
    assert model.n_iter_ == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": ["nope"]}, ValueError, r"no column\(s\) \['nope'\]"),
        ({"y": ["spend"], "sample_weight": "w8"}, ValueError, r"no column\(s\) \['w8'\]"),
        ({"y": np.zeros(3)}, TypeError, "y must name the source's target column"),
        ({"y": ["spend"], "sample_weight": np.ones(3)}, TypeError, "sample_weight must name"),
    ],
)
def test_clear_errors_for_targets_and_weights(data, kwargs, error, match):
    _, folder = data
    with pytest.raises(error, match=match):
        MMoERegressor(**fast(max_epochs=1)).fit(folder, **kwargs)


def test_clear_errors_for_bad_sources(tmp_path):
    frame = _frame(200)
    with pytest.raises(ValueError, match="does not exist"):
        MMoERegressor().fit(str(tmp_path / "nothing"), y=["spend"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty source"):
        MMoERegressor().fit(str(empty), y=["spend"])
    no_rows = tmp_path / "no_rows"
    _write(frame.iloc[:0], no_rows, files=1)
    with pytest.raises(ValueError, match="empty source"):
        MMoERegressor().fit(str(no_rows), y=["spend"])
    clash = tmp_path / "clash"
    _write(frame, clash, files=2)
    other = frame.assign(age=frame["age"].astype(str))
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False), clash / "part-9.parquet")
    with pytest.raises(ValueError, match="column 'age' is (large_)?string in .*part-9"):
        MMoERegressor().fit(str(clash), y=["spend"])


def test_shuffling_spans_row_groups(data):
    """Each epoch reads the row groups in a new order and mixes rows across them."""
    frame, folder = data
    model = MMoERegressor(**fast(max_epochs=1, random_state=0, batch_size=100))
    source = _only(folder, [*FEATURES, "spend"])
    model.fit(source, y=["spend"])
    train = _streamed_rows(model, source)
    seen = []
    for X, _ in train.batches(100, shuffle=True):
        seen.append(X[:, 0].numpy())
    ages = np.concatenate(seen)
    # all rows, each once
    assert len(ages) == len(frame)
    np.testing.assert_allclose(
        np.sort(ages), np.sort(model.input_encoder_.transform(frame[FEATURES])[:, 0]), rtol=1e-6
    )
    # a batch holds rows of many row groups (250 rows each): the buffer mixes them
    encoded = model.input_encoder_.transform(frame[FEATURES])[:, 0]  # float32, as streamed
    position = {float(a): i for i, a in enumerate(encoded)}
    groups = {position[float(a)] // 250 for a in seen[0]}
    assert len(groups) > 5


def _streamed_rows(model, dataset):
    from sk_mmoe.data._stream_fit import encode_frame, open_source

    source = open_source(dataset, ["spend"])
    source.encode = lambda frame: encode_frame(model, model.target_encoder_, source, frame)
    train, _ = source.datasets(None, 0)
    return train
