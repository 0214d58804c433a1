"""make_mmoe_tasks (the synthetic tasks of Ma et al., 2018, section 3.2) and make_funnel_tasks."""

import numpy as np
import pytest

from sk_mmoe.datasets import make_funnel_tasks, make_mmoe_tasks


def label_correlation(correlation, random_state=0, **kwargs):
    _, Y = make_mmoe_tasks(4000, correlation=correlation, random_state=random_state, **kwargs)
    return np.corrcoef(Y.T)[0, 1]


def test_shapes_and_dtype():
    X, Y = make_mmoe_tasks(50, n_features=7, n_tasks=3, correlation=0.5, random_state=0)
    assert X.shape == (50, 7)
    assert Y.shape == (50, 3)
    assert X.dtype == Y.dtype == np.float64
    assert np.all(np.isfinite(Y))


def test_deterministic_for_a_seed():
    first = make_mmoe_tasks(100, n_features=10, correlation=0.7, random_state=3)
    second = make_mmoe_tasks(100, n_features=10, correlation=0.7, random_state=3)
    rng_state = make_mmoe_tasks(
        100, n_features=10, correlation=0.7, random_state=np.random.RandomState(3)
    )
    for a, b, c in zip(first, second, rng_state):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    other = make_mmoe_tasks(100, n_features=10, correlation=0.7, random_state=4)
    assert not np.allclose(first[1], other[1])


def test_correlation_changes_only_the_tasks_relation():
    """Same seed, other correlation: same X and same first task."""
    X1, Y1 = make_mmoe_tasks(100, n_features=10, correlation=0.5, random_state=0)
    X2, Y2 = make_mmoe_tasks(100, n_features=10, correlation=0.9, random_state=0)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_allclose(Y1[:, 0], Y2[:, 0])
    assert not np.allclose(Y1[:, 1], Y2[:, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_correlation_rises_with_correlation(seed):
    observed = [label_correlation(p, seed) for p in (0.0, 0.5, 0.9, 1.0)]
    assert np.all(np.diff(observed) > 0), observed
    assert abs(observed[0]) < 0.1
    assert observed[-1] > 0.98


def test_correlation_one_means_same_task_up_to_noise():
    _, Y = make_mmoe_tasks(500, n_features=10, correlation=1.0, noise=0.0, random_state=0)
    np.testing.assert_allclose(Y[:, 0], Y[:, 1])


def test_no_sines_gives_linear_tasks_with_cosine_correlation():
    # without the sine terms the labels are jointly Gaussian with correlation p
    assert label_correlation(0.6, n_sin=0, noise=0.0) == pytest.approx(0.6, abs=0.05)


def test_noise_level():
    X, Y0 = make_mmoe_tasks(3000, n_features=5, correlation=0.5, noise=0.0, random_state=0)
    _, Y1 = make_mmoe_tasks(3000, n_features=5, correlation=0.5, noise=0.5, random_state=0)
    assert np.std(Y1 - Y0) == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_features": 2, "n_tasks": 3}, "n_features=2 must be at least n_tasks=3"),
        ({"correlation": 1.5}, "correlation"),
        ({"scale": 0.0}, "scale"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mmoe_tasks(10, **kwargs)


# ------------------------------------------------------------ make_funnel_tasks
def test_funnel_shapes_labels_and_rates():
    X, y, proba = make_funnel_tasks(
        40_000,
        n_features=6,
        click_rate=0.3,
        conversion_rate=0.2,
        return_proba=True,
        random_state=0,
    )
    assert X.shape == (40_000, 6) and list(y.columns) == ["click", "convert"]
    assert set(np.unique(y.to_numpy())) == {0, 1}
    # a conversion only after a click
    assert (y["convert"] <= y["click"]).all()
    # the rates asked for, in the true probabilities exactly and in the labels roughly
    assert proba["click"].mean() == pytest.approx(0.3, abs=1e-8)
    clicked = proba["click"] * proba["convert_given_click"]
    assert clicked.sum() / proba["click"].sum() == pytest.approx(0.2, abs=1e-8)
    np.testing.assert_array_equal(proba["click_and_convert"], clicked)
    assert y["click"].mean() == pytest.approx(0.3, abs=0.01)
    assert y["convert"][y["click"] == 1].mean() == pytest.approx(0.2, abs=0.01)


def test_funnel_conversion_depends_on_the_features_unlike_the_click():
    X, _, proba = make_funnel_tasks(5000, overlap=0.0, return_proba=True, random_state=0)
    click = np.log(proba["click"] / (1 - proba["click"]))
    convert = np.log(proba["convert_given_click"] / (1 - proba["convert_given_click"]))
    # the click logit is linear in X; the conversion logit is not that line
    residual = convert - np.polyval(np.polyfit(click, convert, 1), click)
    assert residual.std() > 1.0
    flat = make_funnel_tasks(1000, scale=0.0, return_proba=True, random_state=0)[2]
    assert np.ptp(flat["click"]) < 1e-12 and np.ptp(flat["convert_given_click"]) < 1e-12


def test_funnel_deterministic_for_a_seed():
    first = make_funnel_tasks(300, random_state=3)
    second = make_funnel_tasks(300, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1].equals(second[1])
    assert not first[1].equals(make_funnel_tasks(300, random_state=4)[1])
