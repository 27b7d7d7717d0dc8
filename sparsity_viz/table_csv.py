"""A table as CSV text for a download that a spreadsheet opens without running any of its cells.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (CSV injection): class names from an uploaded dataset reached a download as
``=HYPERLINK(...)`` (an audit). Such cells, and such column names, get a leading apostrophe, as OWASP
advises; numbers, and text that reads as a plain number, are written as they are. Lines end in CRLF
(RFC 4180), so a cell holding a carriage return is quoted instead of splitting its row.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .data_upload import is_number_text

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value``, with an apostrophe in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not is_number_text(value):
        return "'" + value
    return value


def table_csv(frame: pd.DataFrame) -> str:
    """``frame`` (without its index) as CSV text with every formula-like text cell and column name defused."""
    safe = frame.rename(columns=spreadsheet_safe)
    for column in safe.columns[safe.dtypes.map(lambda d: not pd.api.types.is_numeric_dtype(d)).to_numpy()]:
        safe[column] = safe[column].map(spreadsheet_safe)
    return safe.to_csv(index=False, lineterminator="\r\n")  # RFC 4180: a cell holding a bare \r is quoted too
