"""A data source larger than memory: Parquet files and ``pyarrow.dataset`` datasets.

``fit(source, y=[target columns])`` with a path to a Parquet file or folder,
or a :class:`pyarrow.dataset.Dataset`, streams the rows in record batches.
The unit of reading is the *row group*; each epoch reads the row groups in a
fresh random order and mixes their rows in a bounded shuffle buffer, so
memory stays flat in the number of rows.

How a streamed fit learns what an in-memory fit learns from all of ``X``:

- the input encoding (categories, numeric scaling, numeric-embedding bins)
  is fitted on a random sample of at most :data:`ENCODER_SAMPLE_ROWS` rows
  drawn from the whole source (a category absent from the sample maps to
  "other", as an unseen one does);
- the targets are read once in full (only their columns): the classes of
  every classification task, the missing labels, and the weights;
- the features are every column of the dataset's schema but the targets
  and the weights: to leave columns out, open the dataset with a schema of
  the columns to read, ``pyarrow.dataset.dataset(path, schema=...)``;
- early stopping holds out whole row groups (``validation_fraction`` of
  them, at least one) when the source has enough of them, otherwise a
  random ``validation_fraction`` of the rows of every row group.

Under ``accelerator=`` (several processes) each process reads its own share
of the row groups, and every process takes the same number of steps.
"""

from __future__ import annotations

import hashlib
import itertools
import os

import numpy as np
import torch

#: rows the input encoding is fitted on (a random sample of the source)
ENCODER_SAMPLE_ROWS = 100_000
#: rows read from a file at a time
READ_ROWS = 65_536


def is_source(X):
    """Whether ``X`` is a streamed source: a pyarrow Dataset or a path to Parquet."""
    if isinstance(X, (str, os.PathLike)):
        return True
    return type(X).__module__.startswith("pyarrow") and type(X).__name__.endswith("Dataset")


def open_dataset(source):
    """``source`` as a checked :class:`pyarrow.dataset.Dataset`.

    Raises ValueError for a path that does not exist, an empty source, or
    files whose schemas disagree (naming the file and the columns).
    """
    try:
        import pyarrow.dataset as ds
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f'Reading Parquet needs pyarrow: pip install "sk-mmoe[parquet]" ({exc})'
        ) from exc
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise ValueError(f"X is a path, but {os.fspath(source)!r} does not exist.")
        source = ds.dataset(source, format="parquet")
    fragments = list(source.get_fragments())
    if not fragments:
        raise ValueError("X is an empty source: it has no files.")
    schema = source.schema
    for fragment in fragments:
        own = fragment.physical_schema
        for field in schema:
            if own.get_field_index(field.name) < 0:
                raise ValueError(
                    f"{fragment.path} has no column {field.name!r}, which other files of the "
                    "source have; all files must have the same columns."
                )
            other = own.field(field.name).type
            if not _same_kind(other, field.type):
                raise ValueError(
                    f"column {field.name!r} is {other} in {fragment.path} but {field.type} "
                    "in the source's schema; all files must agree on each column's type."
                )
    if source.count_rows() == 0:
        raise ValueError("X is an empty source: its files hold no rows.")
    return source


def _same_kind(a, b):
    """Whether two Arrow types hold the same values (dictionary-encoded or not)."""
    import pyarrow as pa

    def kind(t):
        if pa.types.is_dictionary(t):
            t = t.value_type
        return pa.string() if pa.types.is_large_string(t) else t

    return kind(a) == kind(b)


class ParquetSource:
    """Rows streamed from a dataset, encoded batch by batch.

    Parameters
    ----------
    dataset : pyarrow.dataset.Dataset
        The checked source (:func:`open_dataset`).
    target_columns : list of str
        The targets' columns.
    weight_column : str or None
        The sample weights' column.
    """

    def __init__(self, dataset, target_columns, weight_column=None):
        self.dataset = dataset
        names = dataset.schema.names
        missing = [c for c in [*target_columns, weight_column] if c is not None and c not in names]
        if missing:
            raise ValueError(f"the source has no column(s) {missing}; its columns are {names}.")
        self.target_columns = list(target_columns)
        self.weight_column = weight_column
        special = {*target_columns, weight_column}
        self.feature_columns = [c for c in names if c not in special]
        if not self.feature_columns:
            raise ValueError("the source has no feature column besides the targets.")
        #: the columns read: features, targets, weights
        self.columns = [c for c in names if c in special or c in self.feature_columns]
        self.columns = [c for c in self.columns if c is not None]
        self.units = [
            (piece, piece.row_groups[0].num_rows)
            for fragment in dataset.get_fragments()
            for piece in fragment.split_by_row_group()
        ]
        self.units = [(piece, n) for piece, n in self.units if n]
        #: row group -> boolean mask of its rows with a label, where some have none
        self.labelled = {}
        #: frame -> (X, targets): set by the fit once its encoders are fitted
        self.encode = None

    @property
    def n_rows(self):
        """Number of rows (from the files' metadata)."""
        return sum(n for _, n in self.units)

    # ------------------------------------------------------------ first pass
    def sample(self, n_rows, seed):
        """A pandas DataFrame of at most ``n_rows`` random rows of all columns.

        Read row group by row group (one in memory at a time), keeping the
        drawn rows of each: memory is the sample plus one row group.
        """
        import pyarrow as pa

        total = self.n_rows
        rng = np.random.RandomState(seed)
        index = np.arange(total) if total <= n_rows else np.sort(rng.choice(total, n_rows, False))
        starts = np.cumsum([0] + [n for _, n in self.units])
        pieces = []
        for u, (piece, _) in enumerate(self.units):
            lo, hi = np.searchsorted(index, [starts[u], starts[u + 1]])
            if lo == hi:
                continue
            table = piece.to_table(columns=self.columns)
            pieces.append(table.take(pa.array(index[lo:hi] - starts[u])))
        return pa.concat_tables(pieces).to_pandas()

    def read_units(self, columns):
        """``(row group, frame)`` for every row of ``columns``, in file order.

        Each frame's ``attrs["start"]`` is its first row within its row group.
        """
        for u, (piece, _) in enumerate(self.units):
            start = 0
            for batch in piece.to_batches(columns=columns, batch_size=READ_ROWS):
                frame = batch.to_pandas()
                frame.attrs["start"] = start
                start += len(frame)
                yield u, frame

    def read_columns(self, columns):
        """All rows of ``columns`` as one pandas DataFrame (for targets: a few columns)."""
        import pandas as pd

        frames = [frame for _, frame in self.read_units(columns)]
        return pd.concat(frames, ignore_index=True)

    # --------------------------------------------------------------- epochs
    def datasets(self, validation_fraction, seed):
        """``(train, valid)`` streamed datasets; ``valid`` None without a fraction.

        ``self.encode(frame)`` (set by the fit once its encoders are fitted)
        turns a pandas DataFrame of the source's rows into ``(X, targets)``
        float32 arrays, ``targets`` with the weight column last.
        """
        encode = self.encode
        n_units = len(self.units)
        if validation_fraction is None:
            return StreamedRows(self, list(range(n_units)), None, encode), None
        n_valid = round(validation_fraction * n_units)
        if n_valid >= 1 and n_units - n_valid >= 1:
            order = np.random.RandomState(seed).permutation(n_units)
            valid, train = sorted(order[:n_valid]), sorted(order[n_valid:])
            return (
                StreamedRows(self, train, None, encode),
                StreamedRows(self, valid, None, encode),
            )
        # too few row groups to hold some out: a fraction of every one's rows
        units = list(range(n_units))
        mask = (seed, validation_fraction)
        return (
            StreamedRows(self, units, (*mask, False), encode),
            StreamedRows(self, units, (*mask, True), encode),
        )

    def fingerprint(self, dataset):
        """Identifies the source's files and sizes (checkpoints compare it)."""
        parts = [f"{piece.path}:{piece.row_groups[0].id}:{n}" for piece, n in self.units]
        return "parquet|" + "|".join(parts) + f"|{dataset.units}|{dataset.mask}"


class StreamedRows(torch.utils.data.Dataset):
    """Some row groups of a :class:`ParquetSource`, read and encoded batch by batch.

    ``mask`` ``(seed, fraction, held_out)`` keeps, in every row group, the
    rows a seeded draw holds out (``held_out``) or keeps for training.
    """

    def __init__(self, source, units, mask, encode):
        super().__init__()
        self.source = source
        self.units = list(units)
        self.mask = mask
        self.encode = encode

    def __len__(self):
        """Number of rows (an upper bound with a row mask)."""
        return sum(self.source.units[u][1] for u in self.units)

    def _frames(self, units):
        source = self.source
        for u in units:
            piece, _ = source.units[u]
            keep = self._kept(u)
            start = 0
            for batch in piece.to_batches(columns=source.columns, batch_size=READ_ROWS):
                frame = batch.to_pandas()
                if keep is not None:
                    frame = frame[keep[start : start + len(frame)]]
                start += batch.num_rows
                if len(frame):
                    yield frame

    def _encoded(self, units):
        for frame in self._frames(units):
            encoded = self.encode(frame)
            if encoded is not None:
                yield encoded

    def fingerprint_values(self):
        """``(4,)`` float64 identifying these rows (processes compare it before training)."""
        digest = hashlib.sha256(self.source.fingerprint(self).encode()).digest()
        checksum = [int.from_bytes(digest[i : i + 6], "little") for i in (0, 6, 12)]
        return torch.tensor([len(self), *checksum], dtype=torch.float64)

    def _kept(self, u):
        """Boolean mask of the rows of row group ``u`` this dataset reads (None: all)."""
        n = self.source.units[u][1]
        keep = self.source.labelled.get(u)
        if self.mask is not None:
            seed, fraction, held_out = self.mask
            drawn = (np.random.RandomState([seed, u]).random_sample(n) < fraction) == held_out
            keep = drawn if keep is None else keep & drawn
        return keep

    def _rows(self, u):
        keep = self._kept(u)
        return self.source.units[u][1] if keep is None else int(keep.sum())

    def batches(self, batch_size, shuffle=False, num_shards=1, shard=0):
        """``(X, y)`` float32 tensors of ``batch_size`` rows (the last may be short).

        With ``shuffle``, the row groups are read in a random order (drawn
        from torch's seeded generator, the same in every process) and rows
        are mixed in a buffer of ``16 * batch_size`` rows at least. With
        ``num_shards > 1`` this process reads every ``num_shards``-th row
        group and yields as many full batches as the process with the
        fewest rows has, so that every process takes the same number of steps.
        """
        units = self.units
        if shuffle:
            units = [units[i] for i in torch.randperm(len(units)).tolist()]
        if num_shards == 1:
            yield from self._batched(units, batch_size, shuffle)
            return
        shares = [units[s::num_shards] for s in range(num_shards)]
        steps = min(sum(self._rows(u) for u in share) // batch_size for share in shares)
        yield from itertools.islice(self._batched(shares[shard], batch_size, shuffle), steps)

    def _batched(self, units, batch_size, shuffle):
        buffer_rows = max(16 * batch_size, READ_ROWS) if shuffle else batch_size
        pending_X, pending_y, held = [], [], 0
        for X, y in self._encoded(units):
            pending_X.append(torch.from_numpy(X))
            pending_y.append(torch.from_numpy(y))
            held += len(X)
            if held < buffer_rows:
                continue
            X_all, y_all = torch.cat(pending_X), torch.cat(pending_y)
            if shuffle:
                perm = torch.randperm(len(X_all))
                X_all, y_all = X_all[perm], y_all[perm]
            n_full = len(X_all) // batch_size * batch_size
            for start in range(0, n_full, batch_size):
                yield X_all[start : start + batch_size], y_all[start : start + batch_size]
            pending_X, pending_y = [X_all[n_full:]], [y_all[n_full:]]
            held = len(X_all) - n_full
        if held:
            X_all, y_all = torch.cat(pending_X), torch.cat(pending_y)
            if shuffle:
                perm = torch.randperm(len(X_all))
                X_all, y_all = X_all[perm], y_all[perm]
            for start in range(0, len(X_all), batch_size):
                yield X_all[start : start + batch_size], y_all[start : start + batch_size]
