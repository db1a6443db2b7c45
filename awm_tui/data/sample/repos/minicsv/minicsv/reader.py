"""Parse CSV text into rows of strings."""

from __future__ import annotations

from .dialect import EXCEL, Dialect


class CSVError(ValueError):
    """The input is not well-formed CSV."""


def parse_line(line: str, dialect: Dialect = EXCEL) -> list[str]:
    """Split one CSV record into its fields.

    A field may be wrapped in ``dialect.quotechar``; inside a quoted field the
    delimiter is an ordinary character and a doubled quote (``""``) stands for
    one literal quote.
    """
    fields: list[str] = []
    field: list[str] = []
    in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_quotes:
            if ch == dialect.quotechar:
                in_quotes = False
            else:
                field.append(ch)
        elif ch == dialect.quotechar:
            in_quotes = True
        elif ch == dialect.delimiter:
            fields.append("".join(field))
            field = []
        else:
            field.append(ch)
        i += 1
    if in_quotes:
        raise CSVError(f"unterminated quoted field in record {line!r}")
    fields.append("".join(field))
    return fields


def read_rows(text: str, dialect: Dialect = EXCEL, *, skip_blank: bool = True) -> list[list[str]]:
    """Parse a whole CSV document into a list of rows.

    Blank lines are skipped unless ``skip_blank`` is false, in which case each
    one becomes a row with a single empty field.
    """
    rows: list[list[str]] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the document's final line break does not start a new row
    for line in lines:
        if not line and skip_blank:
            continue
        rows.append(parse_line(line, dialect))
    return rows


def read_dicts(
    text: str,
    dialect: Dialect = EXCEL,
    *,
    restval: str | None = None,
) -> list[dict[str, str | None]]:
    """Parse a CSV document whose first row names the columns.

    Rows shorter than the header are padded with ``restval``; rows longer than
    the header are an error.
    """
    rows = read_rows(text, dialect)
    if not rows:
        return []
    header, *body = rows
    if len(set(header)) != len(header):
        raise CSVError(f"duplicate column names in header {header!r}")
    records: list[dict[str, str | None]] = []
    for number, row in enumerate(body, start=2):
        if len(row) > len(header):
            raise CSVError(f"row {number} has {len(row)} fields but the header has {len(header)}")
        record: dict[str, str | None] = dict(zip(header, row))
        for name in header[len(row):]:
            record[name] = restval
        records.append(record)
    return records
