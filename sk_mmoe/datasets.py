"""Synthetic multi-task data with a controlled task correlation."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_mmoe_tasks"]


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
