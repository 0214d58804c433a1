"""make_mmoe_tasks: the synthetic tasks of Ma et al. (2018), section 3.2."""

import numpy as np
import pytest

from sk_mmoe.datasets import make_mmoe_tasks


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
