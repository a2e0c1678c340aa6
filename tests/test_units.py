"""riverbed.units: the one parser of counts, amounts, byte sizes and lists."""

import pytest

from riverbed.errors import ConfigError
from riverbed.units import parse_bytes, parse_count, parse_counts, parse_float, parse_floats, split_quantity


def test_counts_golden():
    assert [parse_count(t) for t in ("100", "100K", "100k", "1e5", "1E5", "100_000", "2.5K", "1M", "7B", "1T")] == \
        [100, 100_000, 100_000, 100_000, 100_000, 100_000, 2_500, 10**6, 7 * 10**9, 10**12]
    assert parse_count(42) == 42 and parse_count("0") == 0
    assert parse_counts("1K, 2K,4e3") == [1000, 2000, 4000]


def test_floats_and_lists_golden():
    assert parse_float("5e23") == 5e23 and parse_float("1.5M") == 1.5e6 and parse_float("-0.5") == -0.5
    assert parse_floats("1e21,5e23") == [1e21, 5e23]


def test_bytes_golden():
    assert parse_bytes("5GB") == 5 * 10**9 and parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("500 MB") == 5 * 10**8 and parse_bytes(1024) == 1024 and parse_bytes("1024") == 1024


def test_split_quantity_units():
    units = ("tok", "steps")
    assert split_quantity("2M tok", units) == (2e6, "M", "tok")
    assert split_quantity("65536tok", units) == (65536.0, "", "tok")  # "t" of "tok" is no tera suffix
    assert split_quantity("2Ksteps", units) == (2000.0, "K", "steps")
    assert split_quantity("20", units) == (20.0, "", "")


@pytest.mark.parametrize("fn, text, msg", [
    (parse_count, "1e400", "too large"),
    (parse_count, "1.5", "whole number"),
    (parse_count, "-3", ">= 0"),
    (parse_count, "abc", "expected a number"),
    (parse_count, "10 apples", "unexpected 'apples'"),
    (parse_count, True, "expected a number"),
    (parse_float, "inf", "expected a number"),
    (parse_float, "nan", "expected a number"),
    (parse_float, float("inf"), "not a finite number"),
    (parse_floats, "1e21,,5e23", "comma-separated"),
    (parse_bytes, "5 parsecs", "like 5GB"),
    (parse_bytes, "0GB", "positive"),
    (parse_bytes, "1e400GB", "too large"),
])
def test_errors_name_the_field(fn, text, msg):
    with pytest.raises(ConfigError, match=msg) as err:
        fn(text, field="--every")
    assert str(err.value).startswith("--every=")


@pytest.mark.parametrize("text, want", [("9007199254740993", 9007199254740993), ("9_007_199_254_740_993", 9007199254740993),
                                        ("9223372036854775807", 2**63 - 1), ("1.5K", 1500), ("12345678901234567M", 12345678901234567 * 10**6)])
def test_parse_count_is_exact_beyond_float_precision(text, want):
    assert parse_count(text) == want
