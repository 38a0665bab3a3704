"""The compiled fast path means exactly what the reference validator means."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from schema.compiled import compile_predicate

CASES = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": "number", "minimum": 0, "maximum": 10}, [0, 10, 10.5, -1, True, False, "5"]),
    ({"type": ["string", "null"], "minLength": 2}, ["ab", "a", None, 3]),
    ({"enum": [1, 2, -1]}, [1, 1.0, True, -1, "1", None]),
    ({"enum": ["a", "b"]}, ["a", "c", None, ["a"]]),
    ({"const": True}, [True, 1, False, "true"]),
    ({"const": {"a": [1]}}, [{"a": [1]}, {"a": [True]}, {"a": [1.0]}]),
    ({"enum": [None, [1], {"x": 1}]}, [None, [1], [True], {"x": 1}, {"x": 1, "y": 2}, 0]),
    ({"uniqueItems": True}, [[1, True], [1, 1.0], ["a", "a"], [[1], [1]], [{"a": 1}, {"a": True}], "aa"]),
    (
        {"items": {"enum": ["x", "y"]}, "uniqueItems": True, "minItems": 1},
        [["x", "y"], ["x", "x"], [], [1], "x"],
    ),
    ({"maxItems": 1}, [[], [1], [1, 2], {"a": 1}]),
    ({"pattern": "^a+$", "maxLength": 3}, ["aaa", "aaaa", "ba", 7]),
    ({"required": ["a"], "properties": {"a": {"type": "string"}}}, [{"a": "x"}, {"a": 1}, {}, [], "a"]),
    (
        {
            "properties": {"a": {}},
            "patternProperties": {"^x-": {"type": "integer"}},
            "additionalProperties": False,
        },
        [{"a": 1}, {"x-1": 2}, {"x-1": "2"}, {"b": 1}, {}],
    ),
    ({"additionalProperties": {"type": "string"}}, [{"a": "x"}, {"a": 1}, {}]),
    (
        {"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": {"required": ["c"]}},
        [{"a": 1, "b": 1}, {"a": 1}, {"c": 1}, {}, 5],
    ),
    (
        {"if": {"properties": {"k": {"const": "x"}}}, "then": {"required": ["y"]}},
        [{"k": "x"}, {"k": "z"}, {}, {"k": "x", "y": 1}],
    ),
    ({"not": {"type": "string"}}, ["s", 1]),
    ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, [0, 1, 2, 3]),
    ({"$defs": {"d": {"type": "string"}}, "$ref": "#/$defs/d", "maxLength": 1}, ["a", "ab", 1]),
    ({"properties": {"a": False, "b": True}}, [{"a": 1}, {"b": 1}, {}]),
    (
        {
            "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
            "$ref": "#/$defs/node",
        },
        [{"child": {"child": {}}}, {"child": {"child": 5}}, {"child": 5}, []],
    ),
    ({"format": "date"}, ["2026-01-01", "2026-02-30", 7]),
    ({"format": "no-checker-for-this"}, ["anything"]),
]


@pytest.mark.parametrize(("schema", "instances"), CASES)
def test_compiled_schemas_agree_with_jsonschema(schema, instances):
    from schema.validation import FORMATS, _format_checker

    compiled = compile_predicate(schema, FORMATS)
    reference = Draft202012Validator(schema, format_checker=_format_checker())
    for instance in instances:
        assert compiled(instance) == reference.is_valid(instance), instance


def test_a_keyword_the_compiler_does_not_know_is_refused():
    with pytest.raises(ValueError, match=r"does not support \['prefixItems'\]; add it to schema.compiled"):
        compile_predicate({"prefixItems": [{"type": "string"}]}, {})
    with pytest.raises(ValueError, match="Only local \\$refs compile"):
        compile_predicate({"$ref": "https://example.org/other.json"}, {})
