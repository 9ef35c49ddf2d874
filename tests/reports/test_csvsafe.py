"""Spreadsheet-safe CSV (OWASP "CSV Injection")."""

import csv
import io

from scrutineer.reports.csvsafe import FORMULA_STARTS, csv_text


def test_every_formula_start_gets_an_apostrophe_and_other_cells_stay():
    cells = [start + "1+1" for start in FORMULA_STARTS]
    text = csv_text(["=header", "x"], [cells, ["plain", 3, None, True, "a=1", "x\r=1"]])
    header, formulas, plain = csv.reader(io.StringIO(text, newline=""))
    assert header == ["'=header", "x"]
    assert formulas == ["'" + c for c in cells] == ["'=1+1", "'+1+1", "'-1+1", "'@1+1", "'\t1+1", "'\r1+1"]
    assert plain == ["plain", "3", "", "True", "a=1", "x\r=1"]
    assert text.count("\r\n") == 3  # lines end in CRLF; a CR inside a cell is quoted


def test_bidi_controls_are_shown_not_obeyed():
    """A right-to-left override in a URL or note would reverse what follows it in a spreadsheet
    ("Trojan Source"): written as <U+202E>, as the app shows it (a cell that began with one then
    begins with "<", no formula)."""
    text = csv_text(["url"], [["http://a\u202eb.com/x"], ["\u2066=cmd\u2069"], [7]])
    _, (url,), (formula,), (number,) = csv.reader(io.StringIO(text, newline=""))
    assert url == "http://a<U+202E>b.com/x"
    assert formula == "<U+2066>=cmd<U+2069>" and number == "7"
