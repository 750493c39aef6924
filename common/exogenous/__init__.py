"""Exogenous (non-price) data: the series catalog, the file loader and point-in-time helpers.

Only the catalog is imported here (no pandas I/O), so the database models can import this package
cheaply; the loader lives in ``common.exogenous.files``.
"""

from common.exogenous.catalog import (
    SERIES,
    TIME_SERIES,
    Column,
    ColumnKind,
    Frequency,
    PublicationRule,
    RuleKind,
    Series,
    get_series,
    series_for_file,
)

__all__ = [
    "SERIES",
    "TIME_SERIES",
    "Column",
    "ColumnKind",
    "Frequency",
    "PublicationRule",
    "RuleKind",
    "Series",
    "get_series",
    "series_for_file",
]
