"""Data sources: where a fit's training rows come from.

The fit run (:mod:`sk_mmoe.training._fit_run`) asks its source for the number of
rows (or None when it is not known before reading), a training and a
validation set in the form skorch iterates over (the source controls the
order of the batches through its ``iterator``), and a fingerprint of the
training data for checkpoints. :class:`InMemorySource` serves arrays,
sparse matrices and DataFrames after validation and encoding; a source
that streams from disk is one more class with the same methods, plus an
entry registered with :func:`register_data_source` that says which ``X`` it
takes and how a fit prepares it (:class:`sk_mmoe.data._stream_fit.ParquetData`).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.model_selection import train_test_split

from ..training._net import BatchIterator, TensorDataset, as_tensor

#: the registered data sources besides rows in memory, tried in order
DATA_SOURCES: list = []


def register_data_source(source):
    """Make ``source`` available: ``fit``, ``predict`` and ``score`` accept what it matches.

    Parameters
    ----------
    source : object
        With ``name``; ``matches(X)``, whether ``X`` is for it;
        ``prepare(run, X, y, sample_weight, hyper)``, the fit's
        ``(source, fitted encoders, gate-check rows)`` (see
        :func:`sk_mmoe.data._stream_fit.prepare`); ``outputs(estimator, X,
        method)``, the network's outputs for every row; ``targets(X, y,
        sample_weight)``, ``score``'s ``(y, sample_weight)``.

    Returns
    -------
    source : object
        The source, so this can be used as a decorator.
    """
    if any(s.name == source.name for s in DATA_SOURCES):
        raise ValueError(f"a data source named {source.name!r} is already registered.")
    DATA_SOURCES.append(source)
    return source


def find_source(X):
    """The registered data source that takes ``X``; None for rows in memory."""
    for source in DATA_SOURCES:
        if source.matches(X):
            return source
    return None


class InMemorySource:
    """Encoded rows held in memory, with their targets.

    Parameters
    ----------
    X : ndarray or scipy CSR matrix of shape (n_rows, n_features)
        The encoded rows (float32 or float64; cast to float32 once here).
    targets : ndarray of shape (n_rows, n_tasks + 1)
        The encoded targets, then the sample weight.

    Attributes
    ----------
    iterator : type
        The skorch iterator of its datasets: whole batches by index (see
        :class:`~sk_mmoe.training._net.BatchIterator`), shuffled each epoch in training.
    """

    iterator = BatchIterator

    def __init__(self, X, targets):
        X32 = X if X.dtype == np.float32 else X.astype(np.float32)
        self.rows = X32 if issparse(X32) else as_tensor(X32)
        self.targets = torch.from_numpy(targets)

    @property
    def n_rows(self):
        """Number of rows (never None for rows in memory)."""
        return self.rows.shape[0]

    def datasets(self, validation_fraction, seed):
        """``(train, valid)``: a random split by ``seed``, or all rows and None.

        ``validation_fraction`` None means no validation set.
        """
        if validation_fraction is None:
            return TensorDataset(self.rows, self.targets), None
        n = self.n_rows
        n_valid = math.ceil(validation_fraction * n)
        if n - n_valid < 1:
            raise ValueError(
                f"early stopping with validation_fraction={validation_fraction} "
                f"leaves no training rows out of {n}."
            )
        train_idx, valid_idx = train_test_split(np.arange(n), test_size=n_valid, random_state=seed)
        return (
            TensorDataset(self.rows, self.targets, torch.from_numpy(train_idx)),
            TensorDataset(self.rows, self.targets, torch.from_numpy(valid_idx)),
        )

    @staticmethod
    def fingerprint(dataset):
        """SHA-256 (hex) of a dataset's rows, targets and row selection.

        Checkpoints compare it to refuse resuming a fit on other data.
        """
        digest = hashlib.sha256()
        for tensor in (dataset.X, dataset.y, dataset.index):
            digest.update(b"|" if tensor is None else _tensor_digest(tensor))
        return digest.hexdigest()


def _tensor_digest(tensor):
    """SHA-256 of a CPU tensor's dtype, shape and values, in chunks of about 16 MB.

    A scipy sparse matrix (CSR) is hashed by its shape and its three arrays.
    """
    if issparse(tensor):
        digest = hashlib.sha256(f"csr{tensor.shape}".encode())
        for part in (tensor.data, tensor.indices, tensor.indptr):
            digest.update(_tensor_digest(torch.from_numpy(np.ascontiguousarray(part))))
        return digest.digest()
    array = tensor.numpy()
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    rows = max(1, (16 << 20) // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]))
    return digest.digest()


# the built-in sources beside rows in memory: one registration line each
from ._stream_fit import ParquetData  # noqa: E402 (it needs the definitions above)

register_data_source(ParquetData)
