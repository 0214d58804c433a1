"""Running a fitted network on numpy input, chunk by chunk.

Predictions are computed in chunks of ``PREDICT_BATCH_SIZE`` rows; a chunk
smaller than ``MIN_PREDICT_ROWS`` is zero-padded, so a row's prediction does
not depend on which other rows come with it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import issparse

from ._net import as_tensor

#: rows per forward pass at prediction time
PREDICT_BATCH_SIZE = 4096
#: smaller chunks are zero-padded to this many rows: BLAS picks other kernels
#: (another summation order) for very small matrices, and a row's prediction
#: must not depend on how many rows it was predicted with
MIN_PREDICT_ROWS = 64


def run_module(module, method, X, device):
    """``getattr(module, method)`` on the rows of ``X``, as float32 numpy.

    ``method`` is a method name or a callable (e.g. a bound method with
    arguments fixed by ``functools.partial``); ``X`` is validated numeric
    input; the module is put in eval mode.
    """
    fn = getattr(module, method) if isinstance(method, str) else method
    n_rows = X.shape[0]
    module.eval()
    with torch.inference_mode():
        if n_rows <= PREDICT_BATCH_SIZE:
            return _run_chunk(fn, X, device)  # one chunk: no buffer to fill
        out = None
        for start in range(0, n_rows, PREDICT_BATCH_SIZE):
            result = _run_chunk(fn, X[start : start + PREDICT_BATCH_SIZE], device)
            if out is None:
                out = np.empty((n_rows, *result.shape[1:]), dtype=np.float32)
            out[start : start + len(result)] = result
    return out


def _run_chunk(fn, X, device):
    """``fn`` on the rows of ``X`` as float32 numpy; small chunks zero-padded.

    A sparse ``X`` is densified here, one chunk at a time.
    """
    if issparse(X):
        X = X.toarray()
    chunk = as_tensor(X).to(device=device, dtype=torch.float32)
    n_rows = len(chunk)
    if n_rows < MIN_PREDICT_ROWS:
        chunk = torch.nn.functional.pad(chunk, (0, 0, 0, MIN_PREDICT_ROWS - n_rows))
    return fn(chunk)[:n_rows].cpu().numpy()


def check_float32_range(X):
    """The network computes in float32: larger values would become infinite."""
    limit = np.finfo(np.float32).max
    # max and min rather than abs: no temporary copy of X
    if X.dtype == np.float64 and X.size and (X.max() > limit or X.min() < -limit):
        raise ValueError(
            f"X contains values beyond the float32 range (|x| > {limit:.3g}); the "
            "network computes in float32. Scale X (e.g. StandardScaler)."
        )


def stack_tasks(per_task, single_output):
    """``(n, T)`` array from per-task 1-D arrays (the one array for single-output y)."""
    if single_output:
        return per_task[0]
    dtypes = {col.dtype for col in per_task}
    dtype = dtypes.pop() if len(dtypes) == 1 else object
    out = np.empty((len(per_task[0]), len(per_task)), dtype=dtype)
    for j, col in enumerate(per_task):
        out[:, j] = col
    return out
