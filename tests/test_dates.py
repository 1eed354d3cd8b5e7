import datetime as dt

import pytest
import torch

from course_utils.data.dates import (
    FORMATS,
    NUMERIC_FORMATS,
    SOURCE_CHARS,
    TARGET_BOS,
    TARGET_CHARS,
    decode_source,
    decode_target,
    encode_source,
    encode_target,
    format_date,
    make_examples,
    make_pairs,
    ordinal,
    parse_two_digit_year,
    split_days,
    split_days_with_validation,
)


def test_formats_by_hand():
    d = dt.date(2021, 3, 3)  # a Wednesday
    assert format_date(d, "{d} {B} {yyyy}") == "3 March 2021"
    assert format_date(d, "the {do} of {B} {yyyy}", "upper") == "THE 3RD OF MARCH 2021"
    assert format_date(d, "{a} {d} {b} {yyyy}", "lower") == "wed 3 mar 2021"
    assert format_date(d, "{m}/{d}/{yy}") == "3/3/21"
    assert format_date(dt.date(1999, 12, 31), "{dd}.{mm}.{yyyy}") == "31.12.1999"
    with pytest.raises(ValueError, match="case"):
        format_date(d, "{d}", "title")


def test_ordinals_and_century_rule():
    assert [ordinal(i) for i in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]
    assert parse_two_digit_year(50) == 1950 and parse_two_digit_year(49) == 2049


def test_calendar_years_at_year_end():
    # Week-based years would print 2021 here (ISO week 52 of 2021 runs into Jan 2022).
    d = dt.date(2022, 1, 1)
    assert format_date(d, "{yyyy}{mm}{dd}") == "20220101"
    assert format_date(dt.date(2024, 12, 30), "{dd}-{b}-{yy}") == "30-Dec-24"


def test_split_is_disjoint_and_complete():
    train, test = split_days(1000, seed=3)
    assert len(test) == 1000 and not set(train) & set(test)
    assert len(train) + len(test) == (dt.date(2049, 12, 31) - dt.date(1950, 1, 1)).days + 1
    assert split_days(1000, seed=3)[1] == test  # fixed seed, same split
    with pytest.raises(ValueError):
        split_days(0)


def test_split_with_validation_holds_out_the_first_training_days():
    train, val, test = split_days_with_validation(1000, 300, seed=3)
    plain_train, plain_test = split_days(1000, seed=3)
    assert test == plain_test and val == plain_train[:300] and train == plain_train[300:]
    with pytest.raises(ValueError, match="n_val_days must lie in"):
        split_days_with_validation(1000, 0)


def test_pairs_are_consistent_and_encodable():
    train, _ = split_days(1000)
    pairs = make_pairs(train, 2000, seed=1)
    assert pairs == make_pairs(train, 2000, seed=1)
    for text, iso in pairs:
        date = dt.date.fromisoformat(iso)
        assert str(date.day) in text or f"{date.day:02d}" in text
    src, lengths = encode_source([p[0] for p in pairs])
    assert src.shape == (2000, int(lengths.max())) and src.dtype == torch.long
    assert (src[lengths < src.shape[1], -1] == 0).all()  # right padding with id 0
    assert decode_source(src[5], int(lengths[5])) == pairs[5][0]
    tgt = encode_target([p[1] for p in pairs])
    assert tgt.shape == (2000, 10)
    assert decode_target(tgt[:3]) == [p[1] for p in pairs[:3]]


def test_every_format_and_all_letters_are_in_the_vocabulary():
    for day in (dt.date(1950, 1, 1), dt.date(2049, 12, 31), dt.date(1987, 9, 23)):
        for fmt in FORMATS:
            for case in ("as is", "lower", "upper"):
                encode_source([format_date(day, fmt, case)])
    assert TARGET_CHARS[0] == "^" and SOURCE_CHARS[0] == "\0"


def test_errors():
    with pytest.raises(ValueError, match="not in SOURCE_CHARS"):
        encode_source(["3 März 2021"])
    with pytest.raises(ValueError, match="10 characters"):
        encode_target(["2021-3-3"])
    with pytest.raises(ValueError, match=r"\(N, T\)"):
        decode_target(torch.zeros(10, dtype=torch.long))


def test_numeric_formats_are_short_digit_only_formats_of_the_task():
    assert set(NUMERIC_FORMATS) <= set(FORMATS)
    days, _ = split_days(100, seed=0)
    texts = [text for text, _ in make_pairs(days, 300, seed=0, formats=NUMERIC_FORMATS)]
    assert all(8 <= len(t) <= 10 and not any(c.isalpha() for c in t) for t in texts)
    assert {len(t) for t in texts} == {8, 10}  # yyyymmdd and the two with separators


def test_start_token_is_one_named_id():
    assert TARGET_BOS == 0 and TARGET_CHARS[TARGET_BOS] == "^"
    assert "^" not in "".join(iso for _, iso in make_pairs(split_days(100)[0], 50))  # never a target character


def test_examples_carry_their_format_and_match_the_pairs():
    days, _ = split_days(100, seed=0)
    examples = make_examples(days, 200, seed=4)
    assert [(text, iso) for text, iso, _ in examples] == make_pairs(days, 200, seed=4)
    for text, iso, fmt in examples:
        assert text.lower() == format_date(dt.date.fromisoformat(iso), fmt).lower()
    assert {fmt for *_, fmt in make_examples(days, 50, seed=4, formats=NUMERIC_FORMATS)} <= set(NUMERIC_FORMATS)


@pytest.mark.parametrize(
    ("texts", "error", "words"),
    [
        ([], ValueError, r"non-empty list of date strings.*got \[\]"),
        ("3 May 1999", ValueError, "non-empty list"),
        (["3 May 1999", ""], ValueError, "item 1 .* empty string"),
        (["3 May 1999", 1999], TypeError, "item 1 is a int: 1999"),
        ([b"3 May 1999"], TypeError, "item 0 is a bytes"),
    ],
)
def test_encode_source_refuses_bad_input_clearly(texts, error, words):
    with pytest.raises(error, match=words):
        encode_source(texts)
