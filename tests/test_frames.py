"""Arrow-native frames (polars, pyarrow) behave as the pandas DataFrame they convert to."""

import numpy as np
import pandas as pd
import pytest
from conftest import fast

from sk_mmoe import MMoEClassifier, MMoERegressor

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def frame():
    rng = np.random.RandomState(0)
    n = 300
    X = pd.DataFrame(
        {
            "age": rng.uniform(18, 90, n),
            "city": pd.Categorical(rng.choice(["paris", "rome", "oslo"], n)),
            "plan": rng.choice(["basic", "pro"], n).astype(object),
        }
    )
    y = pd.DataFrame(
        {
            "spend": X["age"] / 10 + (X["city"] == "rome") * 3 + rng.normal(size=n),
            "churn": np.where(X["plan"] == "pro", "no", "yes"),
        }
    )
    return X, y


def _as(kind, df):
    if kind == "polars":
        return pl.from_pandas(df)
    return pa.Table.from_pandas(df, preserve_index=False)


@pytest.mark.parametrize("kind", ["polars", "pyarrow"])
def test_arrow_frames_fit_and_predict_as_pandas(kind, frame):
    X, y = frame
    params = fast(max_epochs=3, random_state=0)
    reference = MMoERegressor(**params).fit(X, y[["spend"]])
    model = MMoERegressor(**params).fit(_as(kind, X), _as(kind, y[["spend"]]))
    assert list(model.feature_names_in_) == ["age", "city", "plan"]
    assert list(model.target_names_) == ["spend"]
    # categorical columns found from the Arrow dtypes, as for the pandas frame
    assert model.is_categorical_.tolist() == [False, True, True]
    np.testing.assert_array_equal(model.predict(_as(kind, X)), reference.predict(X))
    assert model.score(_as(kind, X), _as(kind, y[["spend"]])) == pytest.approx(
        reference.score(X, y[["spend"]])
    )


def test_polars_labels_and_unseen_categories(frame):
    X, y = frame
    model = MMoEClassifier(**fast(max_epochs=2, random_state=0)).fit(
        pl.from_pandas(X), pl.from_pandas(y[["churn"]])
    )
    assert model.classes_[0].tolist() == ["no", "yes"]
    new = pl.DataFrame({"age": [30.0], "city": ["lima"], "plan": ["pro"]})
    assert model.predict(new).shape == (1, 1)
