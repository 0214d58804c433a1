"""Data sources: where a fit's rows come from (in memory, Parquet, Arrow frames).

Internal; a new source is registered with
:func:`~sk_mmoe.data._sources.register_data_source` (see CONTRIBUTING.md).
"""
