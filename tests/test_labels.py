"""Labels files as people really save them: BOM, CRLF, quotes, extra columns, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kisbench.data.collections import Labels, check_targets, read_labels
from kisbench.errors import InputError

HEADER = "ID,short_label,long_label"


def write(tmp_path: Path, data: bytes | str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_bom_and_crlf(tmp_path):
    text = f"{HEADER}\r\n00001,a cat,A grey cat on a sofa.\r\n00002,a dog,A dog.\r\n"
    labels = read_labels(write(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    assert labels.ids == ["00001", "00002"]
    assert labels.texts == {
        "short": ["a cat", "a dog"],
        "long": ["A grey cat on a sofa.", "A dog."],
    }


def test_quoted_commas_and_newlines(tmp_path):
    text = (
        f"{HEADER}\r\n"
        '00001,"cat, grey","First line,\r\nsecond line\n  third"\r\n'
        "00002,dog,A dog.\r\n"
    )
    labels = read_labels(write(tmp_path, text))
    assert labels.texts["short"] == ["cat, grey", "dog"]
    assert labels.texts["long"][0] == "First line, second line third"
    assert labels.lines == [2, 5]  # the second record starts after the 3-line first one


def test_unicode_line_separators_inside_labels_do_not_split_rows(tmp_path):
    text = f"{HEADER}\n00001,caf\u00e9\u2028bar,long\u0085text\n00002,b,c\n"
    labels = read_labels(write(tmp_path, text))
    assert labels.ids == ["00001", "00002"]
    assert labels.texts["short"][0] == "caf\u00e9 bar"


def test_extra_columns_are_ignored_and_extra_labelsets_kept(tmp_path):
    text = "notes,ID,short_label,long_label,medium_label\nx,00001,a,b,c\n,00002,d,e,f\n"
    labels = read_labels(write(tmp_path, text))
    assert labels.ids == ["00001", "00002"]
    assert labels.labelsets == ["short", "long", "medium"]
    assert labels.texts["medium"] == ["c", "f"]


def test_empty_trailing_fields_are_fine_but_an_unquoted_comma_is_an_error(tmp_path):
    ok = read_labels(write(tmp_path, f"{HEADER}\n00001,a,b,,\n"))
    assert ok.texts["long"] == ["b"]
    bad = write(tmp_path, f"{HEADER}\n00001,a,b\n00002,cat, grey,long\n", "bad.csv")
    with pytest.raises(InputError, match=r"bad\.csv, line 3: 4 fields.*double quotes"):
        read_labels(bad)


def test_an_empty_label_is_no_query_of_that_labelset(tmp_path):
    text = f"{HEADER}\n00001,a,b\n00002,c,\n00003, ,e\n00004,f, \n"
    labels = read_labels(write(tmp_path, text))
    assert labels.ids == ["00001", "00002", "00003", "00004"]
    assert labels.queries("short") == {"00001": "a", "00002": "c", "00004": "f"}
    assert labels.queries("long") == {"00001": "b", "00003": "e"}
    assert labels.counts() == {"short": 3, "long": 2}
    assert labels.texts["long"] == ["b", "", "e", ""]  # aligned with ids, "" = none


def test_a_labelset_with_no_label_at_all_is_an_error(tmp_path):
    # partial is fine (above), empty is not: no metric is defined over zero queries
    path = write(tmp_path, f"{HEADER}\n00001,a,\n00002,c, \n")
    with pytest.raises(InputError, match=r"column 'long_label' has no label in any row"):
        read_labels(path)


def test_ids_keep_their_leading_zeros_and_spaces_are_trimmed(tmp_path):
    labels = read_labels(write(tmp_path, f"{HEADER}\n 00088 ,a,b\n88,c,d\n"))
    assert labels.ids == ["00088", "88"]  # two different ids


def test_non_utf8_names_line_and_encoding(tmp_path):
    data = f"{HEADER}\n00001,a,b\n00002,caf".encode() + "\u00e9,long\n".encode("cp1252")
    with pytest.raises(InputError, match=r"line 3, column 10: not valid UTF-8.*Windows-1252"):
        read_labels(write(tmp_path, data))


def test_utf16_is_named(tmp_path):
    data = f"{HEADER}\n00001,a,b\n".encode("utf-16")
    with pytest.raises(InputError, match="UTF-16"):
        read_labels(write(tmp_path, data))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("00001,a\n", r"line 2: 2 fields, expected 3"),
        ("00001,a,b\n00001,c,d\n", r"line 3: duplicate ID '00001' \(first on line 2\)"),
        (",a,b\n", r"line 2: empty ID"),
        ("00001, , \n", r"line 2: no label for ID '00001'"),
        ('00001,"a,b\n00002,c,d\n', r"line 3: malformed CSV"),
        ('00001,"a"x,b\n', r"line 2: malformed CSV"),
        ("", r"header but no labels"),
    ],
)
def test_bad_rows_name_their_line(tmp_path, body, message):
    with pytest.raises(InputError, match=message):
        read_labels(write(tmp_path, f"{HEADER}\n{body}"))


def test_nul_bytes_are_an_error(tmp_path):
    with pytest.raises(InputError, match="line 2: NUL"):
        read_labels(write(tmp_path, f"{HEADER}\n00001,a\x00,b\n"))


def labels(ids: list[str]) -> Labels:
    return Labels(
        path=Path("labels/x.csv"),
        ids=ids,
        texts={"short": ["t"] * len(ids)},
        lines=list(range(2, 2 + len(ids))),
    )


def test_unknown_ids_suggest_the_zero_padded_one():
    images = ["00007", "00088", "00100", "cat"]
    with pytest.raises(InputError) as err:
        check_targets(labels(["00007", "88", "00100.jpg", "dog"]), images)
    message = str(err.value)
    assert "3 labelled ID(s)" in message
    assert "line 3: '88' (did you mean '00088'?" in message
    assert "line 4: '00100.jpg' (did you mean '00100'?" in message
    assert "line 5: 'dog'\n" in message + "\n"


def test_skipped_targets_are_accepted_and_reported():
    images = ["00001", "00003"]
    got = check_targets(labels(["00001", "00002", "00003"]), images, skipped={"00002"})
    assert got == ["00002"]
    with pytest.raises(InputError, match="'00004'"):
        check_targets(labels(["00001", "00004"]), images, skipped={"00002"})
