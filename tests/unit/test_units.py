import pytest

from originguard.units import (
    format_duration,
    format_size,
    parse_count,
    parse_decimal,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("45", 45.0),
        (45, 45.0),
        (0.5, 0.5),
    ],
)
def test_duration_reads_numbers_and_unit_strings_as_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "+5s",  # int() would accept the sign
        "1_0s",  # int() would accept the underscore
        "\u0663s",  # ARABIC-INDIC DIGIT THREE: int() would read it as 3
        "-1s",
        " 5s",
        "5 s",
        "5S",
        "s",
        "",
        "1.s",
        ".5s",
        "1e3s",
        "1m1h",  # largest unit first
        "1s1s",  # each unit once
        "5w",
        "9" * 19 + "s",  # absurdly long numbers are refused before conversion
    ],
)
def test_duration_rejects_loosely_written_strings(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, False, -1, -0.5, float("nan"), float("inf"), None, [1]])
def test_duration_rejects_booleans_negatives_and_non_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.25, "250ms"),
        (30.0, "30s"),
        (60.0, "1m"),
        (400.0, "400s"),
        (5400.0, "90m"),
        (86400.0, "1d"),
        (1.5, "1500ms"),
        (0.0005, "0.0005s"),
    ],
)
def test_duration_prints_in_its_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("512B", 512),
        ("10KB", 10 * 1024),
        ("64KiB", 64 * 1024),
        ("64k", 64 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("1GB", 1024**3),
        ("1gib", 1024**3),
        (0, 0),
        (4096, 4096),
    ],
)
def test_size_units_are_binary_like_nginx(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "value",
    [
        "-1MB",
        "+5KB",
        "1_0KB",
        "\u0663KB",
        "1.5MB",
        "10 MB",
        "MB",
        "10XB",
        "",
        "9" * 19,
        True,
        False,
        -1,
        1.0,
        None,
    ],
)
def test_size_rejects_negatives_garbage_and_booleans(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (700, "700B"), (32 * 1024, "32KB"), (100 * 1024**2, "100MB"), (1024**3, "1GB")],
)
def test_size_prints_in_its_largest_exact_unit(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


def test_count_accepts_digit_strings_from_the_environment() -> None:
    assert parse_count("100") == 100
    assert parse_count(7) == 7


@pytest.mark.parametrize("value", [True, "+1", "1_0", "\u0663", "", " 1", 1.5, -1])
def test_count_rejects_what_int_would_quietly_accept(value: object) -> None:
    with pytest.raises(ValueError):
        parse_count(value)


@pytest.mark.parametrize("value", [True, "nan", "inf", "1_0.5", "+0.5", "-0.5", float("nan")])
def test_decimal_rejects_booleans_and_non_finite_values(value: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(value)


def test_decimal_reads_numbers_and_decimal_strings() -> None:
    assert parse_decimal("0.25") == 0.25
    assert parse_decimal(1) == 1.0
