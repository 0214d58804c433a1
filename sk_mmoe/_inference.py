"""Running a fitted network on numpy input, chunk by chunk.

Predictions are computed in chunks of ``PREDICT_BATCH_SIZE`` rows; a chunk
smaller than ``MIN_PREDICT_ROWS`` is zero-padded, so a row's prediction does
not depend on which other rows come with it.

Every call runs with the thread count its estimator's ``n_jobs`` asks for
(:func:`n_threads`, :func:`thread_limit`), set on the calling thread alone and
given back after. With ``n_jobs=None``, small inputs (at most
``ONE_THREAD_ROWS`` rows) run on the calling thread alone: torch's OpenMP
threads would only wait for each other there, and on a busy machine a parallel
region waits for a descheduled partner thread for milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import ThreadpoolController

from .training._net import as_tensor

#: rows per forward pass at prediction time
PREDICT_BATCH_SIZE = 4096
#: smaller chunks are zero-padded to this many rows: BLAS picks other kernels
#: (another summation order) for very small matrices, and a row's prediction
#: must not depend on how many rows it was predicted with
MIN_PREDICT_ROWS = 64
#: inputs of at most this many rows run without torch's intra-op threads
#: (one-row latency on 2 busy cores: 19 ms with them, see benchmarks/README.md)
ONE_THREAD_ROWS = 1024
#: with ``n_jobs=None``, a fit whose training step has less work than this
#: (batch size x parameters) trains on one thread. On 2 cores shared with
#: other processes, 2 threads made fits of 5e5 to 1e8 (the main job's model,
#: 20,000 x 50 and 200,000 x 40 with the defaults) 4 to 35 times slower than
#: one, and one of 4.7e9 (16 experts of (512, 512)) still 1.1 to 1.7 times
#: slower; large steps gain from threads on an idle machine with many cores
ONE_THREAD_WORK = 1_000_000_000


def run_module(module, method, X, device, n_jobs=None):
    """``getattr(module, method)`` on the rows of ``X``, as float32 numpy.

    ``method`` is a method name or a callable (e.g. a bound method with
    arguments fixed by ``functools.partial``); ``X`` is validated numeric
    input; the module is put in eval mode. On the CPU the call runs with
    :func:`n_threads` threads (``n_jobs=None``: one for at most
    ``ONE_THREAD_ROWS`` rows), set on the calling thread alone and given
    back after.
    """
    fn = getattr(module, method) if isinstance(method, str) else method
    n_rows = X.shape[0]
    # the estimators switch the whole module (skorch's train / eval, or this
    # eval), and training leaves it in training mode: the root's flag tells
    if module.training:
        module.eval()
    cpu = device == "cpu" or torch.device(device).type == "cpu"
    small = n_rows <= ONE_THREAD_ROWS
    # try / finally rather than a context manager: this is the one-row latency path
    previous = _limit_threads(n_threads(n_jobs, small)) if cpu else None
    try:
        with torch.inference_mode():
            if n_rows <= PREDICT_BATCH_SIZE:
                return _run_chunk(fn, X, device, cpu)  # one chunk: no buffer to fill
            out = None
            for start in range(0, n_rows, PREDICT_BATCH_SIZE):
                result = _run_chunk(fn, X[start : start + PREDICT_BATCH_SIZE], device, cpu)
                if out is None:
                    out = np.empty((n_rows, *result.shape[1:]), dtype=np.float32)
                out[start : start + len(result)] = result
        return out
    finally:
        if previous is not None:
            _restore_threads(previous)


def _run_chunk(fn, X, device, cpu):
    """``fn`` on the rows of ``X`` as float32 numpy; small chunks zero-padded.

    A sparse ``X`` is densified here, one chunk at a time.
    """
    if issparse(X):
        X = X.toarray()
    n_rows = X.shape[0]
    if n_rows < MIN_PREDICT_ROWS:
        # the zero-padded float32 rows built in numpy: one cast and copy
        # instead of three torch calls (the same float32 values: both round
        # to nearest)
        padded = np.zeros((MIN_PREDICT_ROWS, X.shape[1]), dtype=np.float32)
        padded[:n_rows] = X
        chunk = torch.from_numpy(padded)
        if not cpu:
            chunk = chunk.to(device)
    else:
        chunk = as_tensor(X).to(device=device, dtype=torch.float32)
    out = fn(chunk)
    return out.numpy()[:n_rows] if cpu else out[:n_rows].cpu().numpy()


# ---------------------------------------------------------- threads per call
# OpenMP's thread count (``nthreads-var``) belongs to the calling thread:
# ``omp_set_num_threads`` there changes no other thread's, so a fit or predict
# call can run its parallel regions on n threads and give the count back after,
# whatever other threads do meanwhile. torch's ``get_num_threads`` reads the
# same per-thread value (OpenMP builds), and MKL's and oneDNN's kernels follow
# it unless the thread set MKL's own count (``torch.set_num_threads`` does).
_openmp = None
_openmp_lock = threading.Lock()


def _openmp_libraries():
    """threadpoolctl's controllers of torch's OpenMP runtime (found once).

    All OpenMP runtimes loaded where none is torch's own copy (a torch
    linked to the system's runtime); none for a torch built without OpenMP.
    """
    global _openmp
    if _openmp is None:
        with _openmp_lock:
            if _openmp is None:
                found = ThreadpoolController().select(user_api="openmp").lib_controllers
                torch_dir = os.path.dirname(os.path.realpath(torch.__file__))
                own = [
                    lib
                    for lib in found
                    if os.path.realpath(lib.filepath).startswith(torch_dir + os.sep)
                ]
                _openmp = own or found
    return _openmp


def n_threads(n_jobs, small):
    """The OpenMP thread count of a call with this ``n_jobs``.

    Parameters
    ----------
    n_jobs : int or None
        The estimator's ``n_jobs``: a positive count as it is; ``-k`` the
        cores this process may use (affinity, cgroup quotas and
        ``OMP_NUM_THREADS`` counted) plus 1 minus k, at least 1; None one
        thread when ``small``, otherwise the calling thread's current count
        capped at those cores.
    small : bool
        Whether the call's work is small enough that threads only wait for
        each other.

    Returns
    -------
    n : int
    """
    if n_jobs is None:
        if small:
            return 1
        return max(1, min(torch.get_num_threads(), _openmp_effective_n_threads()))
    if n_jobs < 0:
        return _openmp_effective_n_threads(int(n_jobs))
    return int(n_jobs)


def fit_threads(n_jobs, net, batch_size):
    """The OpenMP thread count of training ``net`` (initialised) with this ``n_jobs``.

    For ``n_jobs=None`` the work of a training step is ``batch_size`` times
    the module's parameter count, small below :data:`ONE_THREAD_WORK`.
    """
    if n_jobs is None:
        n_params = sum(p.numel() for p in net.module_.parameters())
        return n_threads(None, small=batch_size * n_params < ONE_THREAD_WORK)
    return n_threads(n_jobs, small=False)


@contextlib.contextmanager
def thread_limit(n):
    """Run the block with ``n`` OpenMP threads on the calling thread; restore after.

    Other threads keep their counts (see above). Without an OpenMP runtime
    (a torch built without it) nothing changes.
    """
    previous = _limit_threads(n)
    try:
        yield
    finally:
        _restore_threads(previous)


def _limit_threads(n=1):
    """Set the calling thread's OpenMP runtimes to ``n`` threads; their counts before.

    A runtime already at ``n`` is left alone (None in the returned list).
    """
    # torch initialises a thread's OpenMP count on its first parallel op and
    # would overwrite the limit then: have it do that first
    torch.get_num_threads()
    previous = []
    for lib in _openmp_libraries():
        before = lib.get_num_threads()
        if before == n:
            previous.append(None)
        else:
            lib.set_num_threads(n)
            previous.append(before)
    return previous


def _restore_threads(previous):
    """Give the calling thread back the counts :func:`_limit_threads` returned."""
    for lib, n in zip(_openmp_libraries(), previous):
        if n is not None:
            lib.set_num_threads(n)


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
