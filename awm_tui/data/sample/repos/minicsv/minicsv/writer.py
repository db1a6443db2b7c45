"""Format rows of values as CSV text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .dialect import EXCEL, Dialect


def quote_field(value: object, dialect: Dialect = EXCEL) -> str:
    """Render one value, quoting it when a reader could misread it.

    ``None`` becomes an empty field.  A field is quoted when it contains the
    delimiter, the quote character or a line break, or has surrounding spaces.
    """
    text = "" if value is None else str(value)
    special = (",", dialect.quotechar, "\n", "\r")
    needs_quotes = any(ch in text for ch in special) or text != text.strip()
    if not needs_quotes:
        return text
    q = dialect.quotechar
    return q + text.replace(q, q + q) + q


def format_row(values: Iterable[object], dialect: Dialect = EXCEL) -> str:
    """One CSV record (without the line terminator)."""
    return dialect.delimiter.join(quote_field(v, dialect) for v in values)


def write_rows(rows: Iterable[Iterable[object]], dialect: Dialect = EXCEL) -> str:
    """A whole CSV document, each record followed by the line terminator."""
    return "".join(format_row(row, dialect) + dialect.lineterminator for row in rows)


def write_dicts(
    records: Iterable[Mapping[str, object]],
    fieldnames: Sequence[str] | None = None,
    dialect: Dialect = EXCEL,
) -> str:
    """A CSV document with a header row; missing keys become empty fields."""
    records = list(records)
    if fieldnames is None:
        fieldnames = list(records[0]) if records else []
    rows = [list(fieldnames)]
    rows.extend([record.get(name) for name in fieldnames] for record in records)
    return write_rows(rows, dialect)
