"""Dialects describe how a CSV file is laid out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """Field delimiter, quote character and line terminator of a CSV flavour."""

    delimiter: str = ","
    quotechar: str = '"'
    lineterminator: str = "\n"

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError("delimiter must be a single character")
        if len(self.quotechar) != 1:
            raise ValueError("quotechar must be a single character")
        if self.delimiter == self.quotechar:
            raise ValueError("delimiter and quotechar must differ")
        if self.delimiter in "\r\n" or self.quotechar in "\r\n":
            raise ValueError("delimiter and quotechar cannot be line breaks")


EXCEL = Dialect()
TSV = Dialect(delimiter="\t")
SEMICOLON = Dialect(delimiter=";")
