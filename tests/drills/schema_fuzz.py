"""A small schema-driven fuzzer: hypothesis strategies from the app's OpenAPI document
(JSON Schema 2020-12 subset that pydantic emits), mixed with hostile values, so every
generated request is either valid, nearly valid or garbage."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st

HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "'; DROP TABLE cases; --", "../../etc/passwd", "%00", "%2e%2e%2f",
    "<script>alert(1)</script>", "OS-2026-000001", "OS-9999-999999", "me", "null", "-1",
    "1e309", "NaN", "ก" * 300, "\ud7ff", "🙂" * 50, "a" * 5000, "${jndi:ldap://x}", "{{7*7}}",
])
TEXT = st.one_of(st.text(max_size=40), HOSTILE_TEXT)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), TEXT)
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return resolve(components[ref.rsplit("/", 1)[-1]], components)
    return schema


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0
                ) -> st.SearchStrategy[Any]:
    """Values that mostly follow `schema` (and sometimes do not)."""
    schema = resolve(schema, components)
    if depth > 6:
        return st.none()
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, components, depth + 1) for s in schema[key]])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], components, depth + 1)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, components, depth + 1)
                          for k in kind])
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, components, depth + 1) for k, v in props.items()
                 if k in required}
        optional = {k: from_schema(v, components, depth + 1) for k, v in props.items()
                    if k not in required}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return st.dictionaries(TEXT, from_schema(extra, components, depth + 1), max_size=4)
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(from_schema(items, components, depth + 1), max_size=min(
            int(schema.get("maxItems", 5)), 12))
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return st.dates().map(str)
        if fmt == "date-time":
            return st.datetimes().map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(re.compile(schema["pattern"]), fullmatch=True)
        return st.text(min_size=int(schema.get("minLength", 0)),
                       max_size=min(int(schema.get("maxLength", 60)), 300))
    if kind == "integer":
        return st.integers(schema.get("minimum", -10**6), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


def body_strategy(schema: dict[str, Any] | None, components: dict[str, Any]
                  ) -> st.SearchStrategy[Any]:
    """A request body: schema-shaped (most of the time), or any JSON at all."""
    if schema is None:
        return st.one_of(st.none(), ANY_JSON)
    return st.one_of(from_schema(schema, components), from_schema(schema, components),
                     ANY_JSON)
