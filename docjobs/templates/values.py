"""Reading typed values (dates, amounts, booleans) out of document text.

Shared by the rules engine, which finds values in OCR and PDF text, and by
:func:`docjobs.templates.validate_result`, which coerces a language model's answer.

Conventions, chosen for the invoices and receipts templates are mostly written for:

* Dates: ``2025-05-26``, ``26/05/2025``, ``26.05.2025``, ``26-05-25``, ``26 May 2025``,
  ``May 26, 2025`` (English month names). A numeric date whose first number is above 12 is
  day-first, whose second is above 12 is month-first (US); when both could be the month,
  it is read **day-first**, as most of the world writes it. Two-digit years are 20xx.
* Amounts: ``1,250.75``, ``1.250,75``, ``1 250,75``, ``1'250.75`` and ``$``/``€``/``EUR``
  markers on either side. With a single separator, ``1,250`` is read as a thousands
  comma (1250) and ``1.250`` as a decimal point (1.25); ``12,5`` is a decimal comma.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Generic, TypeVar

T = TypeVar("T")

_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])"
)
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_NUMERIC_DATE = re.compile(r"(?<![\d.,])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?![\d])")
_DAY_MONTH_DATE = re.compile(
    rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\.?[\s-]+{_MONTH}\.?,?[\s-]+(\d{{4}}|\d{{2}})(?!\d)",
    re.IGNORECASE,
)
_MONTH_DAY_DATE = re.compile(
    rf"(?<![a-z]){_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.IGNORECASE
)

_SYMBOL = "[$€£¥₹₩₽₺₪¢]"
_CODE = "[A-Z]{3}(?![A-Za-z])"
"""An ISO 4217 code such as EUR; any three capitals, as the list changes."""
_AMOUNT = re.compile(
    rf"""(?<![\w.,/-])
    (?:(?P<sign>[-\u2212])\s?)?
    (?:(?P<symbol>{_SYMBOL})\s?(?:(?P<sign2>[-\u2212])\s?)?|(?P<code>{_CODE})\s?)?
    (?P<number>\d{{1,3}}(?:[,.\x20\u00a0\u202f']\d{{3}})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)
    (?![\d]|[.,/-]\d)
    (?:\s?(?:{_SYMBOL}|{_CODE}))?""",
    re.VERBOSE,
)
_GROUPING = re.compile("[\x20\u00a0\u202f']")

_TRUE = frozenset({"yes", "y", "true", "x", "✓", "✔", "☑", "checked", "on", "1"})
_FALSE = frozenset({"no", "n", "false", "☐", "unchecked", "off", "0"})


@dataclass(frozen=True)
class Found(Generic[T]):
    """A value read from text, with where in the text it was written."""

    value: T
    start: int
    end: int


def find_date(text: str) -> Found[date] | None:
    """The first date written in ``text``."""
    found = [
        match
        for match in (
            _first(_ISO_DATE, text, _iso),
            _first(_NUMERIC_DATE, text, _numeric),
            _first(_DAY_MONTH_DATE, text, _day_month),
            _first(_MONTH_DAY_DATE, text, _month_day),
        )
        if match is not None
    ]
    return min(found, key=lambda match: match.start, default=None)


def find_amount(text: str) -> Found[Decimal] | None:
    """The first number in ``text``, currency markers and sign included in its span."""
    for match in _AMOUNT.finditer(text):
        number = _to_decimal(match["number"])
        if number is None:
            continue
        if match["sign"] or match["sign2"]:
            number = -number
        return Found(number, match.start(), match.end())
    return None


def find_boolean(text: str) -> Found[bool] | None:
    """``yes``/``no``, ``true``/``false``, a tick or an ``x`` as the first word of ``text``."""
    stripped = text.lstrip()
    word = stripped.split(maxsplit=1)[0] if stripped else ""
    key = word.strip(".,:;()[]").lower()
    start = len(text) - len(stripped)
    if key in _TRUE:
        return Found(True, start, start + len(word))
    if key in _FALSE:
        return Found(False, start, start + len(word))
    return None


def number_value(number: Decimal) -> int | float:
    """JSON number for ``number``: an int when it was written without decimals."""
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(number)
    return float(number)


def integer_value(number: Decimal) -> int | None:
    """``number`` as an int when it is whole (``10.00`` included), else ``None``."""
    if number != number.to_integral_value():
        return None
    return int(number)


def _first(
    pattern: re.Pattern[str], text: str, convert: Callable[[re.Match[str]], T | None]
) -> Found[T] | None:
    for match in pattern.finditer(text):
        value = convert(match)
        if value is not None:
            return Found(value, match.start(), match.end())
    return None


def _make_date(year: int, month: int, day: int) -> date | None:
    if year < 100:
        year += 2000
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _iso(match: re.Match[str]) -> date | None:
    return _make_date(int(match[1]), int(match[2]), int(match[3]))


def _numeric(match: re.Match[str]) -> date | None:
    first, second, year = int(match[1]), int(match[3]), int(match[4])
    if second > 12 >= first:
        return _make_date(year, first, second)  # US month-first, the only reading possible
    return _make_date(year, second, first)


def _day_month(match: re.Match[str]) -> date | None:
    return _make_date(int(match[3]), _MONTHS[match[2][:3].lower()], int(match[1]))


def _month_day(match: re.Match[str]) -> date | None:
    return _make_date(int(match[3]), _MONTHS[match[1][:3].lower()], int(match[2]))


def _to_decimal(number: str) -> Decimal | None:
    digits = _GROUPING.sub("", number)
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_comma >= 0:
        # "1,250" is an English thousands comma; "12,5" and "1250,75" are decimal commas.
        single = digits.count(",") == 1
        decimal_mark = "," if single and len(digits) - last_comma - 1 != 3 else ""
    elif last_dot >= 0:
        decimal_mark = "." if digits.count(".") == 1 else ""
    else:
        decimal_mark = ""
    if decimal_mark:
        whole, _, fraction = digits.rpartition(decimal_mark)
    else:
        whole, fraction = digits, ""
    whole = whole.replace(",", "").replace(".", "")
    try:
        return Decimal(f"{whole}.{fraction}" if fraction else whole)
    except InvalidOperation:
        return None
