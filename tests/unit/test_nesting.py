"""The scanner behind the too-deep refusal (docs/protocol.md §5.3): depth, the path of the
deepest branch, and the top-level request_id, read without recursion."""

from __future__ import annotations

import json

import pytest

from entrypoints.protocol.nesting import PATH_LEVELS, scan


@pytest.mark.parametrize(
    ("frame", "depth", "path"),
    [
        ("{}", 1, "$"),
        ('{"a": [1, 2, {"b c": [[]]}]}', 5, '$.a[2]["b c"][0]'),
        ('{"a": {"x": 1}, "b": [[[[]]]]}', 5, "$.b[0][0][0]"),  # the deeper branch wins
        ('{"k": "[[[{{{", "v": ["\\"]"]}', 2, "$.v"),  # brackets inside strings are text
        ("[" * 100, 100, "$" + "[0]" * PATH_LEVELS),  # cut at level 33, never closed
    ],
)
def test_depth_and_the_path_of_the_deepest_branch(frame: str, depth: int, path: str) -> None:
    nesting = scan(frame)
    assert (nesting.depth, nesting.path) == (depth, path)


def test_the_path_names_at_most_32_steps_and_quotes_odd_keys() -> None:
    frame = '{"data": {"the key": ' + '{"a":' * 200 + "1" + "}" * 200 + "}}"
    nesting = scan(frame)
    assert nesting.depth == 202
    assert nesting.path == '$.data["the key"]' + ".a" * 30
    assert nesting.path.count(".") + nesting.path.count("[") == PATH_LEVELS


@pytest.mark.parametrize(
    ("frame", "request_id"),
    [
        ('{"request_id": "r1", "data": ' + "[" * 50 + "]" * 50 + "}", "r1"),
        ('{"data": ' + "[" * 50 + "]" * 50 + ', "request_id": "r\\u00e9"}', "ré"),
        ('{"data": {"request_id": "inner"}}', None),  # only the top level counts
        ('{"request_id": 5}', None),
        ('[{"request_id": "in an array"}]', None),
    ],
)
def test_the_top_level_request_id_is_read_wherever_it_stands(
    frame: str, request_id: str | None
) -> None:
    assert scan(frame).request_id == request_id


def test_a_long_key_is_cut_in_the_path() -> None:
    key = "k" * 500
    nesting = scan(json.dumps({key: [[1]]}))
    assert nesting.path == "$[" + json.dumps("k" * 64 + "…") + "][0]"
