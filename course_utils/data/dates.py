"""Notebook 06, section 1: a translation task that fits on a CPU, human-written dates to ISO 8601.

``"the 3rd of March 2021"``, ``"3/3/21"``, ``"WED 3 MAR 2021"`` ... -> ``"2021-03-03"``.

The dates are generated here with a fixed seed (no download, no locale: month and weekday
names come from the tables below, not from ``strftime``, whose output depends on the
machine's locale). Every format is unambiguous: ``/`` always means month/day/year (US),
``.`` and ``-`` with a month number always mean day.month.year, and a two-digit year
``yy`` means 19yy for yy >= 50 and 20yy otherwise (the dates run from 1950 to 2049). The
years are calendar years; week-based years (babel's ``YYYY``) would put some late-December
dates in the wrong year.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import torch

from ..core.shapes import require_shape

FIRST_DAY = dt.date(1950, 1, 1)
LAST_DAY = dt.date(2049, 12, 31)

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Fields: {d} day, {dd} zero-padded day, {do} ordinal day (3rd), {m}/{mm} month number,
# {B}/{b} month name/abbreviation, {A}/{a} weekday/abbreviation, {yyyy}/{yy} year.
FORMATS = (
    "{d} {B} {yyyy}",
    "{d} {b} {yyyy}",
    "{B} {d}, {yyyy}",
    "{b} {d}, {yyyy}",
    "{b} {d} {yyyy}",
    "{A}, {B} {d}, {yyyy}",
    "{a} {d} {b} {yyyy}",
    "{A} {do} {B} {yyyy}",
    "{B} {do}, {yyyy}",
    "the {do} of {B} {yyyy}",
    "{dd}.{mm}.{yyyy}",
    "{d}.{m}.{yy}",
    "{mm}/{dd}/{yyyy}",
    "{m}/{d}/{yy}",
    "{dd}-{b}-{yy}",
    "{yyyy}{mm}{dd}",
    "{yyyy}/{mm}/{dd}",
)
# The digit-only formats (8-10 characters, no letters): the short variant of the task that
# notebook 06's last exercise trains on in seconds.
NUMERIC_FORMATS = ("{dd}.{mm}.{yyyy}", "{mm}/{dd}/{yyyy}", "{yyyy}{mm}{dd}")
CASES = ("as is", "lower", "upper")

# Vocabularies. Id 0 is padding in the source; the target has a start token, TARGET_BOS.
PAD_CHAR, BOS_CHAR = "\0", "^"  # the characters behind id 0 of each vocabulary
SOURCE_CHARS = PAD_CHAR + " ,-./0123456789" + "".join(sorted(set("".join(MONTHS + WEEKDAYS + ("thndrdsto",)).lower())))
SOURCE_CHARS += "".join(sorted({c.upper() for c in SOURCE_CHARS if c.isalpha()}))
TARGET_CHARS = BOS_CHAR + "-0123456789"
# The decoder's start token for this task: the id of BOS_CHAR, 0. (05c's own seq2seq vocabulary
# in course_utils.output_types puts its BOS at 1, after padding: each vocabulary names its own.)
TARGET_BOS = TARGET_CHARS.index(BOS_CHAR)
TARGET_LEN = 10  # "yyyy-mm-dd"


def ordinal(day: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd', 11 -> '11th', 22 -> '22nd'."""
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def format_date(date: dt.date, fmt: str, case: str = "as is") -> str:
    """Write ``date`` in one of the human formats (see ``FORMATS``) and a letter case."""
    fields = {
        "d": date.day, "dd": f"{date.day:02d}", "do": ordinal(date.day),
        "m": date.month, "mm": f"{date.month:02d}",
        "B": MONTHS[date.month - 1], "b": MONTHS[date.month - 1][:3],
        "A": WEEKDAYS[date.weekday()], "a": WEEKDAYS[date.weekday()][:3],
        "yyyy": f"{date.year:04d}", "yy": f"{date.year % 100:02d}",
    }
    text = fmt.format(**fields)
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    if case != "as is":
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    return text


def parse_two_digit_year(yy: int) -> int:
    """The course's century rule: 50..99 -> 1950..1999, 00..49 -> 2000..2049."""
    return 1900 + yy if yy >= 50 else 2000 + yy


def split_days(n_test_days: int, seed: int = 0) -> tuple[list[dt.date], list[dt.date]]:
    """Partition the calendar days 1950-2049 into train days and ``n_test_days`` held-out days.

    Held-out examples are written from dates the model never saw in training, in any format.
    """
    n_days = (LAST_DAY - FIRST_DAY).days + 1
    if not 0 < n_test_days < n_days:
        raise ValueError(f"n_test_days must lie in 1..{n_days - 1}, got {n_test_days}")
    order = np.random.default_rng(seed).permutation(n_days)
    days = [FIRST_DAY + dt.timedelta(days=int(i)) for i in order]
    return days[n_test_days:], days[:n_test_days]


def split_days_with_validation(n_test_days: int, n_val_days: int, seed: int = 0
                               ) -> tuple[list[dt.date], list[dt.date], list[dt.date]]:
    """``(train, val, test)`` days: :func:`split_days`, then the first ``n_val_days`` training days held out for
    validation (notebooks 06 and 08b: choose on validation, read the test days once)."""
    train, test = split_days(n_test_days, seed)
    if not 0 < n_val_days < len(train):
        raise ValueError(f"n_val_days must lie in 1..{len(train) - 1}, got {n_val_days}")
    return train[n_val_days:], train[:n_val_days], test


def make_pairs(days: Sequence[dt.date], n: int, seed: int = 0,
               formats: Sequence[str] = FORMATS) -> list[tuple[str, str]]:
    """``n`` examples ``(human text, ISO date)``: a random day from ``days``, format and case."""
    return [(text, iso) for text, iso, _ in make_examples(days, n, seed, formats)]


def make_examples(days: Sequence[dt.date], n: int, seed: int = 0,
                  formats: Sequence[str] = FORMATS) -> list[tuple[str, str, str]]:
    """The examples of :func:`make_pairs` (same seed, same examples) with their format: ``(text, iso, fmt)``."""
    rng = np.random.default_rng(seed)
    day_idx = rng.integers(0, len(days), size=n)
    fmt_idx = rng.integers(0, len(formats), size=n)
    case_idx = rng.integers(0, len(CASES), size=n)
    return [
        (format_date(days[i], formats[f], CASES[c]), days[i].isoformat(), formats[f])
        for i, f, c in zip(day_idx, fmt_idx, case_idx, strict=True)
    ]


def encode_source(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Character ids padded with 0 on the right, and the lengths: ``(N, S)`` and ``(N,)``.

    ``texts`` is a non-empty list of non-empty strings; anything else is refused with a
    message (an empty string would be a sequence of length 0, which no encoder can read).
    """
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("encode_source takes a non-empty list of date strings, e.g. ['3 May 1999']; "
                         f"got {texts!r}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"encode_source takes date strings; item {i} is a {type(text).__name__}: {text!r}")
        if not text:
            raise ValueError(f"item {i} of encode_source's list is an empty string: a date needs at least "
                             "one character")
    index = {c: i for i, c in enumerate(SOURCE_CHARS)}
    lengths = torch.tensor([len(t) for t in texts])
    ids = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)  # (N, S)
    for row, text in enumerate(texts):
        try:
            ids[row, : len(text)] = torch.tensor([index[c] for c in text])
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} of {text!r} is not in SOURCE_CHARS") from None
    return ids, lengths


def encode_target(isos: Sequence[str]) -> torch.Tensor:
    """Target ids ``(N, TARGET_LEN)`` of ISO dates (without the start token)."""
    index = {c: i for i, c in enumerate(TARGET_CHARS)}
    for iso in isos:
        if len(iso) != TARGET_LEN:
            raise ValueError(f"ISO dates have {TARGET_LEN} characters, got {iso!r}")
    return torch.tensor([[index[c] for c in iso] for iso in isos], dtype=torch.long)


def decode_target(ids: torch.Tensor) -> list[str]:
    """Strings for target ids of shape ``(N, T)``."""
    require_shape("ids", ids, ("N", "T"))
    return ["".join(TARGET_CHARS[i] for i in row) for row in ids.tolist()]


def decode_source(ids: torch.Tensor, length: int) -> str:
    """The text of one encoded source row, without padding."""
    return "".join(SOURCE_CHARS[i] for i in ids[:length].tolist())
