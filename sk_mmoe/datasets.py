"""Synthetic multi-task data with a controlled task correlation."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params


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
    correlation of the labels rises with ``p`` but is lower, because of the
    sine terms.

    Parameters
    ----------
    n_samples : int, default=1000
    n_features : int, default=100
        Input dimension ``d``; must be at least ``n_tasks``.
    n_tasks : int, default=2
    correlation : float in [-1, 1], default=0.5
        ``p``, the cosine similarity of the task weight vectors.
    n_sin : int, default=5
        ``m``, the number of sine terms.
    scale : float, default=1.0
        ``c``, the norm of the weight vectors.
    noise : float, default=0.1
        Standard deviation of the Gaussian label noise.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_tasks)

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
