import pytest

from minicsv import EXCEL, SEMICOLON, Dialect


def test_defaults():
    assert (EXCEL.delimiter, EXCEL.quotechar, EXCEL.lineterminator) == (",", '"', "\n")
    assert SEMICOLON.delimiter == ";"


@pytest.mark.parametrize("kwargs", [{"delimiter": ",,"}, {"quotechar": ""}, {"delimiter": '"'}, {"delimiter": "\n"}])
def test_invalid_dialects(kwargs):
    with pytest.raises(ValueError):
        Dialect(**kwargs)
