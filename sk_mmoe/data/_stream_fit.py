"""The first pass of a streamed fit: encoders and targets learnt from a Parquet source.

:func:`prepare` is the streamed counterpart of what ``FitRun`` does with
``X`` in memory: it fits the input encoding on a sample of rows, reads the
target (and weight) columns once in full, and hands back a
:class:`~sk_mmoe.data._parquet.ParquetSource` that encodes each batch it reads.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np
import pandas as pd

from .._inference import run_module
from .._targets import missing_mask, natural
from .._task_types import REGRESSION
from ._parquet import ENCODER_SAMPLE_ROWS, READ_ROWS, ParquetSource, is_source, open_dataset


def target_columns(y):
    """The target column names of a streamed fit (``y`` as names)."""
    if isinstance(y, str):
        return [y]
    if isinstance(y, (list, tuple)) and y and all(isinstance(c, str) for c in y):
        return list(y)
    raise TypeError(
        "When X is a Parquet path or a pyarrow Dataset, y must name the source's target "
        f"column(s), e.g. y=['click', 'watch_time']; got {type(y).__name__}."
    )


def weight_column(sample_weight):
    """The weight column of a streamed fit (a name, or None)."""
    if sample_weight is None or isinstance(sample_weight, str):
        return sample_weight
    raise TypeError(
        "When X is a Parquet path or a pyarrow Dataset, sample_weight must name a column "
        f"of the source; got {type(sample_weight).__name__}."
    )


def open_source(X, y, sample_weight=None):
    """A :class:`ParquetSource` of ``X`` with the named targets and weights."""
    return ParquetSource(open_dataset(X), target_columns(y), weight_column(sample_weight))


#: a classification task with more labels than this in a source is refused
MAX_CLASSES = 100_000


def first_pass(source, make_targets, policy, classification):
    """Read the targets (and weights) once: labelled rows, classes, checks.

    ``classification`` says, per task, whether to collect its labels (a
    regression task's values are not kept: memory stays flat). Returns
    ``(labels seen per task (None for the others), number of labelled
    rows)``; records in ``source.labelled`` the rows that have a label, per
    row group, where some have none.
    """
    columns = [*source.target_columns] + ([source.weight_column] if source.weight_column else [])
    seen = [set() for _ in source.target_columns]
    n_labelled = 0
    missing_any = np.zeros(len(source.target_columns), dtype=bool)
    missing_all = np.ones(len(source.target_columns), dtype=bool)
    for u, frame in source.read_units(columns):
        targets = make_targets(frame[source.target_columns])
        missing = np.column_stack([missing_mask(c) for c in targets.columns])
        missing_any |= missing.any(axis=0)
        missing_all &= missing.all(axis=0)
        labelled = ~missing.all(axis=1)
        if not labelled.all():
            mask = source.labelled.setdefault(u, np.ones(source.units[u][1], dtype=bool))
            start = frame.attrs["start"]
            mask[start : start + len(frame)] = labelled
        n_labelled += int(labelled.sum())
        for j, column in enumerate(targets.columns):
            if classification[j]:
                seen[j].update(natural(column[~missing[:, j]]).tolist())
                if len(seen[j]) > MAX_CLASSES:
                    raise ValueError(
                        f"y column {targets.labels[j]} has more than {MAX_CLASSES} distinct "
                        "labels; is it a regression target?"
                    )
        if source.weight_column:
            _check_weights(frame[source.weight_column].to_numpy(), source.weight_column)
    labels = targets.labels
    if missing_any.any() and policy == "error":
        bad = [labels[j] for j in np.flatnonzero(missing_any)]
        raise ValueError(
            f"y contains missing values (NaN, None or pd.NA) in task(s) {', '.join(bad)}. "
            "Pass missing_targets='ignore' to train each task on its labelled rows only."
        )
    if missing_all.any():
        empty = [labels[j] for j in np.flatnonzero(missing_all)]
        raise ValueError(f"y has no label at all for task(s) {', '.join(empty)}.")
    labels_seen = [
        np.asarray(sorted(s, key=_sort_key), dtype=object) if wanted else None
        for s, wanted in zip(seen, classification)
    ]
    return labels_seen, n_labelled


def _sort_key(value):
    return (isinstance(value, str), value) if isinstance(value, (numbers.Number, str)) else value


def _check_weights(weights, name):
    weights = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"sample_weight column {name!r} must be finite and non-negative.")


def encode_frame(estimator, encoder, source, frame):
    """``(X, targets)`` float32 arrays of a frame of the source's rows, as fit encodes them."""
    X = estimator._prepare_X(frame[source.feature_columns], reset=False)
    X = np.asarray(X, dtype=np.float32)
    columns = [frame[c].to_numpy() for c in source.target_columns]
    encoded = encoder.transform(columns)
    weight = (
        frame[source.weight_column].to_numpy(dtype=np.float32)
        if source.weight_column
        else np.ones(len(frame), dtype=np.float32)
    )
    return X, np.concatenate([encoded, weight[:, None]], axis=1).astype(np.float32)


def _frames(X, columns):
    """pandas frames of ``columns`` of the source ``X``, in file order (all rows)."""
    dataset = open_dataset(X)
    names = dataset.schema.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"the source has no column(s) {missing}; its columns are {names}.")
    for fragment in dataset.get_fragments():
        for batch in fragment.to_batches(columns=list(columns), batch_size=READ_ROWS):
            if batch.num_rows:
                yield batch.to_pandas()


def stream_outputs(estimator, X, method):
    """Network outputs (``_forward``'s) for every row of the source ``X``, batch by batch."""
    columns = getattr(estimator, "feature_names_in_", None)
    if columns is None:
        raise ValueError(
            "This estimator was fitted on X without column names, so it cannot tell which "
            "columns of a Parquet source to read; fit it on a DataFrame or a source."
        )
    outputs = [
        run_module(
            estimator.module_,
            method,
            estimator._prepare_X(frame, reset=False),
            estimator.net_.device,
            estimator.n_jobs,
        )
        for frame in _frames(X, [str(c) for c in columns])
    ]
    return np.concatenate(outputs)


def read_targets(X, y, sample_weight=None):
    """``(y frame, weights or None)``: the named target (and weight) columns of the source."""
    names = target_columns(y)
    weight = weight_column(sample_weight)
    frames = list(_frames(X, names + ([weight] if weight else [])))
    frame = pd.concat(frames, ignore_index=True)
    y_frame = frame[names[0]] if isinstance(y, str) else frame[names]
    return y_frame, (None if weight is None else frame[weight].to_numpy(dtype=np.float64))


def prepare(run, X, y, sample_weight, hyper):
    """The source, fitted encoders and gate-check rows of a fit call on a Parquet source.

    ``run`` is the :class:`~sk_mmoe.training._fit_run.FitRun`; its steps are shared
    with a fit in memory.
    """
    from ..training._fit_run import Mode, Targets

    est = run.estimator
    source = open_source(X, y, sample_weight)
    run.check_n_tasks(len(source.target_columns))
    est._check_task_weights(len(source.target_columns))
    # a fixed seed: the same sample whatever random_state (which seeds training)
    sample = source.sample(ENCODER_SAMPLE_ROWS, seed=0)
    targets = Targets(sample[source.target_columns])
    targets.single_output = isinstance(y, str)
    if run.mode is Mode.NEW:
        kinds = est._task_types(targets.present(), [str(n) for n in targets.names])
    else:
        kinds = (
            run.resume.fitted(len(targets.columns))[0] if run.resume else est.target_encoder_
        ).task_types
    classification = [kind != REGRESSION for kind in kinds]
    seen, n_labelled = first_pass(source, Targets, est.missing_targets, classification)
    run.resolve_sizes(hyper, n_labelled)
    X_sample = est._prepare_X(sample[source.feature_columns], reset=run.mode is not Mode.CONTINUE)
    weights = (
        sample[source.weight_column].to_numpy(dtype=np.float32) if source.weight_column else None
    )
    fitted = run.target_encoder(targets, weights, seen)
    if run.mode is not Mode.NEW:
        fitted[0].check_labels(seen)
    source.encode = functools.partial(encode_frame, est, fitted[0], source)
    return source, fitted, X_sample


class ParquetData:
    """The data source of Parquet paths and ``pyarrow.dataset`` datasets.

    Registered in :mod:`sk_mmoe.data._sources`.
    """

    name = "parquet"
    matches = staticmethod(is_source)
    prepare = staticmethod(prepare)
    outputs = staticmethod(stream_outputs)
    targets = staticmethod(read_targets)
