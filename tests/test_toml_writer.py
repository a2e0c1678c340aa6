"""dumps_toml round-trips through tomllib for every config-shaped dict (property-based)."""

from __future__ import annotations

import math
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from riverbed.toml_writer import dumps_toml

scalars = st.one_of(st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.floats(allow_nan=False), st.text())
keys = st.text(min_size=1)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=8)
tables = st.dictionaries(keys, st.dictionaries(keys, values, max_size=4) | scalars, max_size=4)


def test_control_characters_round_trip():
    d = {"x": "x\ry", "t": {"k\u0000\u007f": "\u0008\u001f\ttab\nnl\"\\"}}
    assert tomllib.loads(dumps_toml(d)) == d


@given(tables)
def test_dumps_toml_round_trips(d):
    assert tomllib.loads(dumps_toml(d)) == d


def test_none_is_omitted_and_non_finite_floats_survive():
    back = tomllib.loads(dumps_toml({"a": {"n": None, "inf": math.inf, "nan": math.nan}}))
    assert back["a"]["inf"] == math.inf and math.isnan(back["a"]["nan"]) and "n" not in back["a"]
