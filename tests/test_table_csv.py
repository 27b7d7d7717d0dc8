"""CSV downloads open in a spreadsheet without running a cell (CSV injection), and read back otherwise unchanged."""

from __future__ import annotations

import io

import pandas as pd

from sparsity_viz.table_csv import FORMULA_STARTS, spreadsheet_safe, table_csv


def test_formula_like_text_is_defused_and_everything_else_is_written_as_it_is():
    """Found by an audit: class names of an uploaded dataset reached the Activations page's CSV as =HYPERLINK(...)."""
    hostile = ['=1+1', '=HYPERLINK("http://x","y")', "@SUM(1,1)", "-2+x", "+A1", "\tcmd", "\r=1"]
    plain = ["cat", "-3.5", "1e-3", "a=b", "", "naïve, \"quoted\"\nline"]
    frame = pd.DataFrame({"class": hostile + plain, "accuracy": [-0.5 + i / 10 for i in range(13)],
                          "=label": range(13)})
    back = pd.read_csv(io.StringIO(table_csv(frame)), keep_default_na=False)
    assert list(back.columns) == ["class", "accuracy", "'=label"]
    assert back["class"].tolist() == ["'" + v for v in hostile] + plain
    assert back["accuracy"].tolist() == frame["accuracy"].tolist()  # numbers, negative ones too, untouched
    assert back["'=label"].tolist() == list(range(13))
    for start in FORMULA_STARTS:
        assert spreadsheet_safe(f"{start}x") == f"'{start}x"
    assert spreadsheet_safe(-2) == -2 and spreadsheet_safe("-2") == "-2" and spreadsheet_safe(None) is None


def test_a_table_of_numbers_is_the_plain_csv():
    frame = pd.DataFrame({"sparsity": [0.0, 0.5, 0.9], "accuracy": [0.97, 0.95, -1.0], "seed": [0, 1, 2]})
    assert table_csv(frame) == frame.to_csv(index=False, lineterminator="\r\n")
