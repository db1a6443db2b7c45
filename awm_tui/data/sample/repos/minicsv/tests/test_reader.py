import pytest

from minicsv import SEMICOLON, TSV, CSVError, parse_line, read_dicts, read_rows


def test_parse_simple_fields():
    assert parse_line("a,b,c") == ["a", "b", "c"]


def test_parse_empty_fields():
    assert parse_line(",x,") == ["", "x", ""]


def test_parse_quoted_delimiter():
    assert parse_line('"Widget, large",3') == ["Widget, large", "3"]


def test_parse_keeps_spaces():
    assert parse_line(" a , b") == [" a ", " b"]


def test_parse_custom_delimiters():
    assert parse_line("a;b,c", SEMICOLON) == ["a", "b,c"]
    assert parse_line("a\tb", TSV) == ["a", "b"]


def test_unterminated_quote_is_an_error():
    with pytest.raises(CSVError):
        parse_line('a,"oops')


def test_read_rows():
    assert read_rows("name,qty\nbolt,10\nnut,25\n") == [["name", "qty"], ["bolt", "10"], ["nut", "25"]]


def test_read_rows_without_final_newline():
    assert read_rows("a,b\nc,d") == [["a", "b"], ["c", "d"]]


def test_read_rows_skips_blank_lines():
    assert read_rows("a\n\nb\n") == [["a"], ["b"]]
    assert read_rows("a\n\nb\n", skip_blank=False) == [["a"], [""], ["b"]]


def test_read_dicts():
    text = "name,qty\nbolt,10\nnut,25\n"
    assert read_dicts(text) == [{"name": "bolt", "qty": "10"}, {"name": "nut", "qty": "25"}]


def test_read_dicts_pads_short_rows():
    assert read_dicts("a,b,c\n1\n", restval="-") == [{"a": "1", "b": "-", "c": "-"}]


def test_read_dicts_rejects_long_rows():
    with pytest.raises(CSVError, match="row 2"):
        read_dicts("a,b\n1,2,3\n")


def test_read_dicts_rejects_duplicate_columns():
    with pytest.raises(CSVError):
        read_dicts("a,a\n1,2\n")


def test_read_dicts_empty_document():
    assert read_dicts("") == []
