"""minicsv: a tiny CSV reader and writer."""

from .dialect import EXCEL, SEMICOLON, TSV, Dialect
from .reader import CSVError, parse_line, read_dicts, read_rows
from .writer import format_row, quote_field, write_dicts, write_rows

__all__ = [
    "CSVError",
    "Dialect",
    "EXCEL",
    "SEMICOLON",
    "TSV",
    "format_row",
    "parse_line",
    "quote_field",
    "read_dicts",
    "read_rows",
    "write_dicts",
    "write_rows",
]
__version__ = "0.3.1"
