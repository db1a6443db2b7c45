from minicsv import Dialect, format_row, quote_field, write_dicts, write_rows


def test_plain_fields_are_not_quoted():
    assert format_row(["a", "b c", 3]) == "a,b c,3"


def test_none_is_empty():
    assert format_row([None, "x"]) == ",x"


def test_quotes_field_with_comma():
    assert quote_field("Widget, large") == '"Widget, large"'


def test_doubles_embedded_quotes():
    assert quote_field('say "hi"') == '"say ""hi"""'


def test_quotes_surrounding_spaces_and_newlines():
    assert quote_field(" pad") == '" pad"'
    assert quote_field("two\nlines") == '"two\nlines"'


def test_write_rows():
    assert write_rows([["a", "b"], [1, 2]]) == "a,b\n1,2\n"


def test_write_rows_custom_terminator():
    assert write_rows([["a"], ["b"]], Dialect(lineterminator="\r\n")) == "a\r\nb\r\n"


def test_write_dicts():
    records = [{"name": "bolt", "qty": 10}, {"name": "nut"}]
    assert write_dicts(records) == "name,qty\nbolt,10\nnut,\n"


def test_write_dicts_explicit_fieldnames():
    assert write_dicts([{"a": 1, "b": 2}], fieldnames=["b"]) == "b\n2\n"
