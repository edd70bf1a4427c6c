"""The one CSV reader that knows physical lines: record spans, line ends, blank lines, errors."""

from __future__ import annotations

import csv

import pytest

from cvas.core.csvlines import CsvLineError, physical_lines, records


def spans(text: str, **fmtparams) -> list[tuple[int, int, list[str]]]:
    return [(r.start, r.end, r.fields) for r in records(physical_lines(text), **fmtparams)]


def test_a_quoted_line_break_makes_a_record_span_lines():
    assert spans('a,b\n"x\ny",1\n\nz,2\n') == [(1, 1, ["a", "b"]), (2, 3, ["x\ny", "1"]), (4, 4, []), (5, 5, ["z", "2"])]


def test_crlf_and_a_lone_cr_each_end_one_line():
    assert spans("a\r\nb\rc\n") == [(1, 1, ["a"]), (2, 2, ["b"]), (3, 3, ["c"])]


def test_a_file_cut_inside_quotes_names_where_the_record_starts():
    with pytest.raises(CsvLineError) as err:
        spans('h\nok\n"cut\nhere', strict=True)
    assert (err.value.start, err.value.line, str(err.value)) == (3, 4, "unexpected end of data")
    assert isinstance(err.value, csv.Error)
    assert spans('h\n"cut\nhere')[-1] == (2, 3, ["cut\nhere"])          # not strict: read as it is


def test_fields_longer_than_the_csv_module_default_are_read():
    big = "9" * (131072 + 1)                                          # the module default is 128 KiB
    assert spans(f'"{big}",1\n') == [(1, 1, [big, "1"])]


def test_the_format_parameters_reach_the_reader():
    assert spans('a|"b\nc|d\n', delimiter="|", quoting=csv.QUOTE_NONE) == [(1, 1, ["a", '"b']), (2, 2, ["c", "d"])]


def test_the_quick_count_agrees_with_the_csv_module_or_declines():
    import itertools

    from cvas.core.csvlines import count_records, count_records_quick

    pieces = [b"a", b",", b'"', b"\n", b'""', b"\r\n", b'",', b"\n\n", b"x\x00"]
    decided = 0
    for n in range(6):
        for combo in itertools.product(pieces, repeat=n):
            data = b"".join(combo)
            quick = count_records_quick(data)
            if quick is None:
                continue
            lines = physical_lines(data.decode())
            assert quick == count_records(lines), data
            decided += 1
    assert decided > 5_000
    assert count_records_quick(b'h1,h2\n"a ""quoted"" one","with\nbreak"\n\nb,c') == 3
    assert count_records_quick(b'h\nab"c\n') is None        # a quote inside an unquoted field
    assert count_records_quick(b'h\n"open\n') is None       # ends inside quotes
