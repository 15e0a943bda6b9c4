"""An object that names a key twice is refused at the key's path; everything else reads as json does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.snapshot.json_keys import DuplicateKey, loads_once_per_key


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"a": 1, "a": 2}', "$.x.a"),
        ('[{"a": 1}, {"b": {"c": 1, "d": 2, "c": 3}}]', "$.x[1].b.c"),
        ('{"n": [[], [{"k": 0, "k": 0}]]}', "$.x.n[1][0].k"),
    ],
)
def test_a_key_named_twice_is_refused_at_its_path(text: str, path: str) -> None:
    with pytest.raises(DuplicateKey) as refused:
        loads_once_per_key(text, "$.x")
    assert refused.value.path == path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**130), max_value=2**130) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_without_repeated_keys_it_reads_what_json_reads(value: object) -> None:
    text = json.dumps(value)
    assert loads_once_per_key(text, "$") == json.loads(text)
