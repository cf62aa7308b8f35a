"""The one grammar of sizes, lists and per-source lists."""

from __future__ import annotations

import pytest

from otbtf_qgis.core.errors import InputError
from otbtf_qgis.core.jobs.params import list_items, parse_nodata, parse_size, parse_sizes, per_source, split_list


@pytest.mark.parametrize(("text", "size"), [("64", (64, 64)), ("64x32", (64, 32)), (" 5 X 3 ", (5, 3)), (7, (7, 7)),
                                            ("1*2", (1, 2))])
def test_parse_size(text, size):
    assert parse_size(text, "PATCH_SIZE") == size


@pytest.mark.parametrize("text", ["", "x", "64x", "-3", "0", "6.5", "3x0", "64 32"])
def test_parse_size_rejects_bad_text(text):
    with pytest.raises(InputError) as error:
        parse_size(text, "PATCH_SIZE")
    assert error.value.parameter == "PATCH_SIZE"


@pytest.mark.parametrize(("text", "items"), [
    ("", []), ("  ", []), ("a", ["a"]), ("a,b", ["a", "b"]), ("a;b", ["a", "b"]), (" a , b ;c ", ["a", "b", "c"]),
    ("a\nb", ["a", "b"]), ("a;;b", ["a", "", "b"]), ("a,", ["a", ""]), ("COMPRESS=LZW", ["COMPRESS=LZW"]),
])
def test_split_list_separators_and_empty_entries(text, items):
    assert split_list(text) == items
    assert list_items(text) == [item for item in items if item]


def test_per_source_one_for_all_one_each_or_defaults():
    assert per_source("", 3, "NODATA") == ["", "", ""]
    assert per_source("0", 3, "NODATA") == ["0", "0", "0"]
    assert per_source("0;;none", 3, "NODATA") == ["0", "", "none"]
    assert per_source("xs", 1, "SOURCE_NAMES", repeat=False) == ["xs"]
    with pytest.raises(InputError, match="'0,1' gives 2 value\\(s\\) for 3 source\\(s\\): give one value for every "
                                         "source or one value per source") as error:
        per_source("0,1", 3, "NODATA")
    assert error.value.parameter == "NODATA"
    with pytest.raises(InputError, match="'xs' gives 1 value\\(s\\) for 2 source\\(s\\): give one value per source"):
        per_source("xs", 2, "SOURCE_NAMES", repeat=False)


def test_parse_sizes_one_for_all_or_one_each():
    assert parse_sizes("64", 3, "PATCH_SIZES") == [(64, 64)] * 3
    assert parse_sizes("64, 32x16", 2, "PATCH_SIZES") == [(64, 64), (32, 16)]
    assert parse_sizes("64;32x16", 2, "PATCH_SIZES") == [(64, 64), (32, 16)]
    with pytest.raises(InputError, match="'64,32' gives 2 value"):
        parse_sizes("64,32", 3, "PATCH_SIZES")
    with pytest.raises(InputError, match="gives no size for source 2"):
        parse_sizes("64;;32", 3, "PATCH_SIZES")
    with pytest.raises(InputError, match="no size given") as error:
        parse_sizes("", 2, "PATCH_SIZES")
    assert error.value.parameter == "PATCH_SIZES"


def test_parse_nodata():
    assert parse_nodata("") == (None, True)
    assert parse_nodata(" -9999 ") == (-9999.0, True)
    assert parse_nodata("None") == (None, False)
    with pytest.raises(InputError, match="'auto' is not a nodata value: give a number, 'none'") as error:
        parse_nodata("auto")
    assert error.value.parameter == "NODATA"
