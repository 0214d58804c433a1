"""Synthetic multi-task data: tasks of controlled correlation, and funnels."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_funnel_tasks", "make_mmoe_tasks"]


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "n_tasks": [Interval(Integral, 1, None, closed="left")],
        "correlation": [Interval(Real, -1, 1, closed="both")],
        "n_sin": [Interval(Integral, 0, None, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_mmoe_tasks(
    n_samples=1000,
    *,
    n_features=100,
    n_tasks=2,
    correlation=0.5,
    n_sin=5,
    scale=1.0,
    noise=0.1,
    random_state=None,
):
    """Regression tasks whose correlation is controlled, as in Ma et al. (2018).

    Following §3.2 of the MMoE paper: draw orthonormal unit vectors
    ``u_1, ..., u_T``; set ``w_1 = c u_1`` and, for every other task,
    ``w_k = c (p u_1 + sqrt(1 - p^2) u_k)``; draw ``x ~ N(0, I)`` and

    ``y_k = w_k^T x + sum_{j=1}^{m} sin(alpha_j w_k^T x + beta_j) + eps_k``

    with ``alpha_j, beta_j ~ N(0, 1)`` shared by all tasks and
    ``eps_k ~ N(0, noise^2)``. The cosine similarity of ``w_1`` and ``w_k``
    is ``p`` (``p^2`` between two tasks other than the first); the Pearson
    correlation of the labels rises with ``p`` and, for ``p < 1``, is lower
    than ``p`` because of the sine terms. At ``p = 1`` the tasks differ only
    by their noise.

    ``scale`` sets how wiggly the tasks are: ``w_k^T x ~ N(0, c^2)``, so the
    sine terms oscillate ``c`` times faster as ``c`` grows. The paper's
    ``alpha_j, beta_j`` are "given parameters"; here they are drawn from
    ``random_state``, so the difficulty of the tasks varies from seed to seed
    (average over several seeds when comparing models).

    For a fixed ``random_state`` the directions ``u_k``, the sine parameters,
    the inputs ``X`` and the noise do not depend on ``correlation``: calls
    that differ only in ``correlation`` give the same ``X`` and tasks that
    differ only in how much they share, which makes paired comparisons
    across correlations possible.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows.
    n_features : int, default=100
        Input dimension ``d``; must be at least ``n_tasks``.
    n_tasks : int, default=2
        Number of tasks ``T`` (label columns).
    correlation : float in [-1, 1], default=0.5
        ``p``, the cosine similarity of the task weight vectors.
    n_sin : int, default=5
        ``m``, the number of sine terms.
    scale : float, default=1.0
        ``c``, the norm of the weight vectors.
    noise : float, default=0.1
        Standard deviation of the Gaussian label noise.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw; the same int gives the same arrays.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Standard normal inputs.
    Y : ndarray of shape (n_samples, n_tasks)
        One regression label per task.

    References
    ----------
    J. Ma et al. Modeling Task Relationships in Multi-task Learning with
    Multi-gate Mixture-of-Experts. KDD 2018, section 3.2.

    Examples
    --------
    >>> from sk_mmoe.datasets import make_mmoe_tasks
    >>> X, Y = make_mmoe_tasks(200, n_features=20, correlation=0.9, random_state=0)
    >>> X.shape, Y.shape
    ((200, 20), (200, 2))

    The label correlation follows ``correlation``:

    >>> import numpy as np
    >>> for p in (0.0, 0.5, 0.9, 1.0):
    ...     _, Y = make_mmoe_tasks(5000, correlation=p, random_state=0)
    ...     print(f"{p}: {np.corrcoef(Y.T)[0, 1]:.2f}")
    0.0: 0.01
    0.5: 0.48
    0.9: 0.89
    1.0: 1.00
    """
    if n_features < n_tasks:
        raise ValueError(
            f"n_features={n_features} must be at least n_tasks={n_tasks} "
            "(one orthogonal direction per task)."
        )
    rng = check_random_state(random_state)
    # orthonormal columns (d, T) from the QR decomposition of a Gaussian matrix
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, n_tasks)))
    weights = np.empty((n_features, n_tasks))
    weights[:, 0] = scale * basis[:, 0]
    rest = np.sqrt(1.0 - correlation**2)
    weights[:, 1:] = scale * (correlation * basis[:, :1] + rest * basis[:, 1:])
    alpha = rng.standard_normal(n_sin)
    beta = rng.standard_normal(n_sin)
    X = rng.standard_normal((n_samples, n_features))
    linear = X @ weights  # (n, T)
    # (n, T, 1) * (m,) -> (n, T, m), summed over the sine terms
    waves = np.sin(linear[..., None] * alpha + beta).sum(axis=-1)
    Y = linear + waves + noise * rng.standard_normal((n_samples, n_tasks))
    return X, Y


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 2, None, closed="left")],
        "click_rate": [Interval(Real, 0, 1, closed="neither")],
        "conversion_rate": [Interval(Real, 0, 1, closed="neither")],
        "overlap": [Interval(Real, -1, 1, closed="both")],
        "scale": [Interval(Real, 0, None, closed="left")],
        "return_proba": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_funnel_tasks(
    n_samples=10_000,
    *,
    n_features=20,
    click_rate=0.1,
    conversion_rate=0.1,
    overlap=0.5,
    scale=2.0,
    return_proba=False,
    random_state=None,
):
    """Generate impressions with a click, and a conversion observed only after a click.

    A funnel as in ESMM (Ma et al., SIGIR 2018): each row is an impression;
    it is clicked with probability ``P(click | x) = sigmoid(a + c u^T x)``
    and, once clicked, converts with probability
    ``P(convert | click, x) = sigmoid(b + c v^T x + c (u^T x)^2 / 2)``
    (so ``y["convert"]`` is 0 wherever ``y["click"]`` is 0). ``u`` and ``v``
    are unit vectors whose cosine similarity is ``overlap``: the conversion
    depends on the features partly through the click's direction and partly
    through its own. ``x ~ N(0, I)``. The intercepts ``a`` and ``b`` are set
    on the drawn rows so that the mean click probability is ``click_rate``
    and the mean conversion probability of the clicked impressions
    (``E[P(click) P(convert | click)] / E[P(click)]``) is ``conversion_rate``.

    Parameters
    ----------
    n_samples : int, default=10_000
        Number of impressions (rows).
    n_features : int, default=20
        Input dimension; at least 2.
    click_rate : float in (0, 1), default=0.1
        Mean probability of a click.
    conversion_rate : float in (0, 1), default=0.1
        Mean probability of a conversion given a click.
    overlap : float in [-1, 1], default=0.5
        Cosine similarity of the click's and the conversion's directions.
    scale : float >= 0, default=2.0
        ``c``: how strongly the features decide (0: every row has the same
        probabilities).
    return_proba : bool, default=False
        Also return the true probabilities.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw; the same int gives the same data.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Standard normal features.
    y : DataFrame of shape (n_samples, 2)
        Columns ``"click"`` and ``"convert"``, int 0 / 1.
    proba : DataFrame of shape (n_samples, 3)
        Only with ``return_proba``: the true ``"click"`` (P(click)),
        ``"convert_given_click"`` (P(convert | click)) and
        ``"click_and_convert"`` (their product) of each row.

    References
    ----------
    X. Ma, L. Zhao, G. Huang, Z. Wang, Z. Hu, X. Zhu, K. Gai. Entire Space
    Multi-Task Model: An Effective Approach for Estimating Post-Click
    Conversion Rate. SIGIR 2018.

    Examples
    --------
    >>> from sk_mmoe.datasets import make_funnel_tasks
    >>> X, y = make_funnel_tasks(20_000, click_rate=0.2, conversion_rate=0.1, random_state=0)
    >>> X.shape, list(y.columns)
    ((20000, 20), ['click', 'convert'])
    >>> bool((y["convert"] <= y["click"]).all())
    True
    >>> print(f"{y['click'].mean():.2f} {y['convert'][y['click'] == 1].mean():.2f}")
    0.20 0.10
    """
    rng = check_random_state(random_state)
    # two orthonormal directions (d, 2) from the QR decomposition of a Gaussian matrix
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))
    u = basis[:, 0]
    v = overlap * basis[:, 0] + np.sqrt(1.0 - overlap**2) * basis[:, 1]
    X = rng.standard_normal((n_samples, n_features))
    click_score = scale * (X @ u)  # (n,)
    convert_score = scale * (X @ v) + 0.5 * scale * (X @ u) ** 2  # (n,)
    a = _intercept(lambda t: expit(t + click_score).mean() - click_rate)
    p_click = expit(a + click_score)
    b = _intercept(
        lambda t: (p_click * expit(t + convert_score)).sum() / p_click.sum() - conversion_rate
    )
    p_convert = expit(b + convert_score)
    click = rng.random_sample(n_samples) < p_click
    convert = click & (rng.random_sample(n_samples) < p_convert)
    y = pd.DataFrame({"click": click.astype(int), "convert": convert.astype(int)})
    if not return_proba:
        return X, y
    proba = pd.DataFrame(
        {
            "click": p_click,
            "convert_given_click": p_convert,
            "click_and_convert": p_click * p_convert,
        }
    )
    return X, y, proba


def _intercept(gap):
    """The root of ``gap`` (increasing in the intercept), bracketed widely."""
    return brentq(gap, -60.0, 60.0, xtol=1e-10)
