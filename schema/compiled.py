"""A JSON Schema compiled into one plain Python predicate: the fast path of validation.

Valid documents are the common case (every harvested item is checked), and the fast
path only has to say yes or no, so the schema becomes straight-line Python that
returns False at the first failure: no exceptions, no messages, no repeated type
checks. The explaining path (jsonschema) says *why*; ``tests/schema`` checks the two
agree.

Only the keywords our schemas use are compiled, with 2020-12 meaning; any other
keyword is refused at compile time, so a schema change can never be silently ignored
by the fast path.

Why not fastjsonschema: on our activity schema it took about three times as long a
document (``bench/validators.py``; docs/performance.md has the figures), and it follows
draft 7, where a ``$ref`` silences the keywords beside it, so our schema would need
rewriting to mean the same to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples", "format"}
)
# The same tests as jsonschema's type checker: true is not a number, 1.0 is an integer.
_TYPE_TESTS = {
    "string": "isinstance(v, str)",
    "integer": "(isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer())",
    "number": "(isinstance(v, _NUMBER) and not isinstance(v, bool))",
    "boolean": "isinstance(v, bool)",
    "object": "isinstance(v, dict)",
    "array": "isinstance(v, list)",
    "null": "v is None",
}
# The same tests as functions (one definition of each), for the schema's own enum values.
_IS_TYPE = {kind: eval(f"lambda v: {test}", {"_NUMBER": (int, float)}) for kind, test in _TYPE_TESTS.items()}
_COMPILED = frozenset(
    {
        "type", "enum", "const", "required", "properties", "patternProperties", "additionalProperties",
        "items", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "allOf", "if", "then", "else", "not", "$ref",
    }
)  # fmt: skip


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema means it: true and 1 differ, 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    equal: bool = a == b
    return equal


def _all_unique(items: list[Any]) -> bool:
    if all(isinstance(item, str) for item in items):
        return len(set(items)) == len(items)
    return not any(_json_equal(x, y) for i, x in enumerate(items) for y in items[:i])


def _in_enum(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(_json_equal(value, option) for option in allowed)


class _Compiler:
    def __init__(self, root: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]]):
        self.root = root
        self.formats = formats
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "_NUMBER": (int, float),
            "_all_unique": _all_unique,
            "_in_enum": _in_enum,
        }
        self.functions: dict[int, str] = {}
        self.inlining: set[int] = set()

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def function(self, schema: Any) -> str:
        """The name of the predicate for ``schema``, compiling it the first time."""
        if schema is True or self.asserts_nothing(schema):
            return "_always"
        if schema is False:
            return "_never"
        key = id(schema)
        if key not in self.functions:
            name = self.functions[key] = f"_s{len(self.functions)}"
            body = self.body(schema)
            self.lines += [f"def {name}(v):", *body, "    return True", ""]
        return self.functions[key]

    def asserts_nothing(self, schema: Any) -> bool:
        """Whether ``schema`` only annotates (describes) and so accepts every value."""
        return (
            isinstance(schema, dict)
            and schema.keys() <= _ANNOTATIONS
            and schema.get("format", None) not in self.formats
        )

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"Only local $refs compile; {ref!r} is not one.")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def body(self, schema: Mapping[str, Any]) -> list[str]:
        unknown = schema.keys() - _COMPILED - _ANNOTATIONS
        if unknown:
            raise ValueError(
                f"The compiled validator does not support {sorted(unknown)}; add it to {__name__}."
            )
        out: list[str] = []
        fail = "return False"
        if "type" in schema:
            types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            test = " or ".join(_TYPE_TESTS[t] for t in types)
            out.append(f"    if not ({test}): {fail}")
        if "const" in schema:
            out += self.enum([schema["const"]])
        if "enum" in schema:
            out += self.enum(schema["enum"])
        if "not" in schema:
            out.append(f"    if {self.function(schema['not'])}(v): {fail}")
        # A $ref and allOf are conjunctions on the same value: their checks join this body.
        conjuncts = [self.resolve(schema["$ref"])] if "$ref" in schema else []
        for subschema in [*conjuncts, *schema.get("allOf", ())]:
            out += self.inlined(subschema)
        if "if" in schema:
            then, otherwise = schema.get("then", True), schema.get("else", True)
            out.append(f"    if {self.function(schema['if'])}(v):")
            out.append(f"        if not {self.function(then)}(v): {fail}")
            out.append(f"    elif not {self.function(otherwise)}(v): {fail}")
        out += self.string(schema) + self.number(schema) + self.array(schema) + self.object(schema)
        return out

    def inlined(self, schema: Any) -> list[str]:
        if schema is True or self.asserts_nothing(schema):
            return []
        if schema is False or id(schema) in self.inlining:  # a recursive $ref: call, don't unfold
            return [f"    if not {self.function(schema)}(v): return False"]
        self.inlining.add(id(schema))
        try:
            return self.body(schema)
        finally:
            self.inlining.discard(id(schema))

    @staticmethod
    def guarded(schema: Mapping[str, Any], kind: str, checks: list[str]) -> list[str]:
        """``checks`` (any one failing fails) for values of ``kind``; others skip them, as in JSON Schema."""
        if not checks:
            return []
        failed = " or ".join(checks)
        if schema.get("type") == kind:  # the type test at the top of this body ran first
            return [f"    if {failed}: return False"]
        return [f"    if {_TYPE_TESTS[kind]} and ({failed}): return False"]

    def enum(self, allowed: list[Any]) -> list[str]:
        if allowed and all(isinstance(option, bool) for option in allowed):
            return [f"    if not ({' or '.join(f'v is {option}' for option in allowed)}): return False"]
        for kind in ("string", "integer"):
            if allowed and all(_IS_TYPE[kind](option) for option in allowed):
                # Python's == agrees with JSON Schema's once the type is right (1 == 1.0).
                test = _TYPE_TESTS["number" if kind == "integer" else kind]
                return [f"    if not ({test} and v in {self.constant(frozenset(allowed))}): return False"]
        return [f"    if not _in_enum(v, {self.constant(tuple(allowed))}): return False"]

    def string(self, schema: Mapping[str, Any]) -> list[str]:
        checks = []
        if "minLength" in schema:
            checks.append(f"len(v) < {int(schema['minLength'])}")
        if "maxLength" in schema:
            checks.append(f"len(v) > {int(schema['maxLength'])}")
        if "pattern" in schema:
            checks.append(f"not {self.constant(re.compile(schema['pattern']).search)}(v)")
        if schema.get("format") in self.formats:
            checks.append(f"not {self.constant(self.formats[schema['format']])}(v)")
        return self.guarded(schema, "string", checks)

    def number(self, schema: Mapping[str, Any]) -> list[str]:
        checks = []
        if "minimum" in schema:
            checks.append(f"v < {schema['minimum']!r}")
        if "maximum" in schema:
            checks.append(f"v > {schema['maximum']!r}")
        kind = "integer" if schema.get("type") == "integer" else "number"
        return self.guarded(schema, kind, checks)

    def array(self, schema: Mapping[str, Any]) -> list[str]:
        checks = []
        if "minItems" in schema:
            checks.append(f"len(v) < {int(schema['minItems'])}")
        if "maxItems" in schema:
            checks.append(f"len(v) > {int(schema['maxItems'])}")
        items = schema.get("items", True)
        if items is not True:
            checks.append(f"not all(map({self.function(items)}, v))")
        if schema.get("uniqueItems"):
            # Once the items are known to be strings (checked just before), a set decides.
            strings = isinstance(items, dict) and (items.get("type") == "string" or self._string_enum(items))
            checks.append("len(set(v)) != len(v)" if strings else "not _all_unique(v)")
        return self.guarded(schema, "array", checks)

    def _string_enum(self, schema: Mapping[str, Any]) -> bool:
        target = self.resolve(schema["$ref"]) if "$ref" in schema else schema
        return bool(target.get("enum")) and all(isinstance(option, str) for option in target["enum"])

    def object(self, schema: Mapping[str, Any]) -> list[str]:
        lines = []
        if "required" in schema:
            required = self.constant(frozenset(schema["required"]))
            lines.append(f"        if not v.keys() >= {required}: return False")
        for name, subschema in schema.get("properties", {}).items():
            check = self.function(subschema)
            if check != "_always":
                lines.append(f"        if {name!r} in v and not {check}(v[{name!r}]): return False")
        pattern_properties = schema.get("patternProperties", {})
        patterns = {
            re.compile(pattern).search: self.function(sub) for pattern, sub in pattern_properties.items()
        }
        for search, check in patterns.items():
            if check != "_always":
                matches = self.constant(search)
                lines.append(
                    f"        if not all({check}(x) for k, x in v.items() if {matches}(k)): return False"
                )
        additional = schema.get("additionalProperties", True)
        if additional is not True:
            known = self.constant(frozenset(schema.get("properties", {})))
            searches = self.constant(tuple(patterns))
            lines += [
                f"        for k in v.keys() - {known}:",
                f"            if not any(search(k) for search in {searches}):",
                f"                if not {self.function(additional)}(v[k]): return False",
            ]
        if not lines:
            return []
        if schema.get("type") == "object":
            return [line[4:] for line in lines]
        return ["    if isinstance(v, dict):", *lines]


def compile_predicate(schema: Mapping[str, Any], formats: Mapping[str, Callable[[Any], bool]]) -> Predicate:
    """``schema`` (JSON Schema 2020-12) as a function answering "is this document valid?".

    ``formats`` maps format names to checks; other formats are annotations, as in jsonschema
    without a checker for them.
    """
    compiler = _Compiler(schema, formats)
    entry = compiler.function(schema)
    namespace: dict[str, Any] = {**compiler.constants}
    source = "\n".join(
        ["def _always(v):", "    return True", "", "def _never(v):", "    return False", "", *compiler.lines]
    )
    exec(compile(source, f"<compiled {schema.get('$id', 'schema')}>", "exec"), namespace)
    predicate: Predicate = namespace[entry]
    return predicate
