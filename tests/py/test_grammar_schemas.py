"""Grammar-level structured-output suite (issue 11): for 60 JSON Schemas of our own (API
responses, config files, nested records, recursion, enums, patterns, formats, number ranges,
every supported keyword), random instances sampled from the compiled grammar at several seeds
and sizes must parse as JSON and validate against their schema with PyPI `jsonschema`
(Draft 2020-12, with its format checker). Sampling is done by build-*/tools/grammar_sample,
which also replays each sample through the byte matcher. Schemas we cannot enforce must be
refused with a message naming the keyword (what the server turns into a 400).

Model-sampled outputs (random-weight and SmolLM2 through the server) come when the server is
wired; this suite checks the grammar itself: everything it allows is valid.
"""
import json
import os
import subprocess

import jsonschema
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("LL_BUILD_DIR", os.path.join(ROOT, "build"))
TOOL = os.path.join(BUILD, "tools", "grammar_sample")

S = {"type": "string"}
I = {"type": "integer"}
N = {"type": "number"}
B = {"type": "boolean"}


def obj(props, required=None, **kw):
    d = {"type": "object", "properties": props}
    if required is not None:
        d["required"] = required
    d.update(kw)
    return d


SCHEMAS = {
    # scalars and unions
    "string": S,
    "integer": I,
    "number": N,
    "boolean": B,
    "null": {"type": "null"},
    "nullable_string": {"type": ["string", "null"]},
    "string_or_int": {"type": ["string", "integer"]},
    "any": {},
    "true_schema": True,
    # objects
    "person": obj({"name": S, "age": {"type": "integer", "minimum": 0, "maximum": 150}, "email": {"type": "string", "format": "email"}}, ["name", "age"]),
    "all_optional": obj({"a": S, "b": I, "c": B}),
    "closed": obj({"id": I}, ["id"], additionalProperties=False),
    "open_extra": obj({"id": I}, ["id"], additionalProperties=True),
    "map_of_ints": {"type": "object", "additionalProperties": {"type": "integer"}},
    "required_only": {"type": "object", "required": ["x", "y"]},
    "escaped_keys": obj({"a\"b": S, "c\\d": I, "ünï": B, "with space": N}, ["a\"b", "c\\d", "ünï", "with space"]),
    # arrays
    "int_list": {"type": "array", "items": I},
    "bounded_list": {"type": "array", "items": S, "minItems": 1, "maxItems": 3},
    "exact_pair": {"type": "array", "items": N, "minItems": 2, "maxItems": 2},
    "tuple": {"type": "array", "prefixItems": [S, I, B], "items": False},
    "tuple_rest": {"type": "array", "prefixItems": [{"const": "head"}], "items": I, "minItems": 2},
    "matrix": {"type": "array", "items": {"type": "array", "items": N, "maxItems": 4}, "maxItems": 4},
    "empty_only": {"type": "array", "maxItems": 0},
    # enums and consts
    "color": {"enum": ["red", "green", "blue"]},
    "mixed_enum": {"enum": [1, "one", None, True, [1, 2], {"k": "v"}]},
    "const_obj": {"const": {"version": 2, "tags": ["a", "b"]}},
    "typed_enum": {"type": "string", "enum": ["a", 1, "b"]},
    "status_record": obj({"status": {"enum": ["active", "inactive", "pending"]}, "code": {"const": 200}}, ["status", "code"]),
    # combinators
    "any_of": {"anyOf": [S, {"type": "integer", "minimum": 10}]},
    "one_of_disjoint": {"oneOf": [{"type": "boolean"}, {"type": "null"}, {"type": "string", "maxLength": 3}]},
    "all_of_merge": {"allOf": [obj({"a": I}), {"properties": {"b": S}, "required": ["b"]}]},
    "tagged_union": {"anyOf": [obj({"kind": {"const": "circle"}, "r": N}, ["kind", "r"], additionalProperties=False),
                               obj({"kind": {"const": "rect"}, "w": N, "h": N}, ["kind", "w", "h"], additionalProperties=False)]},
    "one_of_tagged": {"oneOf": [obj({"type": {"const": "user"}, "name": S}, ["type", "name"]),
                                 obj({"type": {"const": "bot"}, "model": S}, ["type"])]},
    "anyof_with_siblings": {"type": "object", "required": ["t"], "anyOf": [{"properties": {"t": {"const": 1}}}, {"properties": {"t": {"const": "x"}}}]},
    # references and recursion
    "defs_ref": {"$defs": {"addr": obj({"street": S, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, ["street", "zip"])},
                 "type": "object", "properties": {"home": {"$ref": "#/$defs/addr"}, "work": {"$ref": "#/$defs/addr"}}, "required": ["home"]},
    "definitions_ref": {"definitions": {"n": I}, "type": "array", "items": {"$ref": "#/definitions/n"}},
    "tree": {"$defs": {"node": obj({"value": I, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}}, ["value"])},
             "$ref": "#/$defs/node"},
    "linked_list": {"$defs": {"cell": obj({"head": S, "tail": {"anyOf": [{"$ref": "#/$defs/cell"}, {"type": "null"}]}}, ["head", "tail"])},
                    "$ref": "#/$defs/cell"},
    "root_recursion": {"type": "array", "items": {"$ref": "#"}, "maxItems": 3},
    "json_value_recursive": {"$defs": {"v": {"anyOf": [S, N, B, {"type": "null"}, {"type": "array", "items": {"$ref": "#/$defs/v"}},
                                                       {"type": "object", "additionalProperties": {"$ref": "#/$defs/v"}}]}},
                             "$ref": "#/$defs/v"},
    "ref_with_siblings": {"$defs": {"base": obj({"a": I})}, "$ref": "#/$defs/base", "required": ["a"]},
    # strings
    "short_string": {"type": "string", "minLength": 2, "maxLength": 5},
    "nonempty": {"type": "string", "minLength": 1},
    "date": {"type": "string", "format": "date"},
    "date_time": {"type": "string", "format": "date-time"},
    "time": {"type": "string", "format": "time"},
    "uuid": {"type": "string", "format": "uuid"},
    "email": {"type": "string", "format": "email"},
    "phone_pattern": {"type": "string", "pattern": "^\\+?[0-9]{1,3}-[0-9]{3}-[0-9]{4}$"},
    "slug_pattern": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$"},
    "unanchored_pattern": {"type": "string", "pattern": "ab+c"},
    "class_pattern": {"type": "string", "pattern": "^[^\\s\"]{3,8}\\.(?:txt|md)$"},
    "shorthand_pattern": {"type": "string", "pattern": "^\\w+@\\d{2,4}\\W?$"},
    "dot_pattern": {"type": "string", "pattern": "^x.{0,4}y$"},
    "unicode_pattern": {"type": "string", "pattern": "^[α-ω]+ [日本]?$"},
    # numbers
    "int_range": {"type": "integer", "minimum": -50, "maximum": 1234},
    "int_excl": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
    "int_neg_only": {"type": "integer", "maximum": -1},
    "positive_number": {"type": "number", "exclusiveMinimum": 0},
    "number_range": {"type": "number", "minimum": -2.5, "maximum": 7.5},
    "big_int_range": {"type": "integer", "minimum": 1000000, "maximum": 987654321987},
    # real-world shapes
    "api_response": obj({"ok": B, "data": {"type": "array", "items": obj({"id": {"type": "string", "format": "uuid"}, "score": N,
                                                                         "created": {"type": "string", "format": "date-time"}}, ["id", "score"])},
                         "error": {"type": ["string", "null"]}}, ["ok", "data", "error"]),
    "config_file": obj({"server": obj({"host": S, "port": {"type": "integer", "minimum": 1, "maximum": 65535}, "tls": B}, ["host", "port"]),
                        "log_level": {"enum": ["debug", "info", "warn", "error"]},
                        "features": {"type": "object", "additionalProperties": B}}, ["server", "log_level"]),
    "order": obj({"order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
                  "items": {"type": "array", "minItems": 1, "items": obj({"sku": S, "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                                                                          "price": {"type": "number", "minimum": 0}}, ["sku", "qty", "price"])},
                  "shipping": {"anyOf": [{"type": "null"}, obj({"date": {"type": "string", "format": "date"}, "carrier": {"enum": ["ups", "dhl"]}}, ["date"])]}},
                 ["order_id", "items", "shipping"]),
    "tool_call": obj({"name": {"const": "get_weather"}, "arguments": obj({"city": {"type": "string", "minLength": 1, "maxLength": 40},
                                                                          "unit": {"enum": ["celsius", "fahrenheit"]}}, ["city"], additionalProperties=False)},
                     ["name", "arguments"]),
    "pydantic_like": {"title": "Model", "type": "object", "$defs": {"Pet": {"title": "Pet", "type": "object", "properties": {"name": {"title": "Name", "type": "string"},
                      "kind": {"title": "Kind", "enum": ["cat", "dog"], "type": "string"}}, "required": ["name", "kind"]}},
                      "properties": {"owner": {"title": "Owner", "type": "string"}, "pets": {"title": "Pets", "type": "array", "items": {"$ref": "#/$defs/Pet"}},
                                     "age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Age"}},
                      "required": ["owner", "pets"]},
}

REFUSED = {
    "multipleOf": ({"type": "integer", "multipleOf": 3}, "multipleOf"),
    "uniqueItems": ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    "not": ({"not": {"type": "string"}}, "not"),
    "if": ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if"),
    "patternProperties": ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
    "minProperties": ({"type": "object", "minProperties": 1}, "minProperties"),
    "format_uri": ({"type": "string", "format": "uri"}, "uri"),
    "lookahead": ({"type": "string", "pattern": "(?=x)x"}, "lookaround"),
    "ref_cycle": ({"$ref": "#"}, "$ref"),
    "no_base_case": ({"type": "object", "properties": {"n": {"$ref": "#"}}, "required": ["n"]}, "never complete"),
    "contradiction": ({"type": "integer", "minimum": 3, "maximum": 2}, "minimum"),
    "remote_ref": ({"$ref": "http://example.com/x.json"}, "local"),
    "overlapping_one_of": ({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]}, "both match"),
}


def tool():
    if not os.path.exists(TOOL):
        pytest.fail(f"{TOOL} not built (make B=... all, or set LL_BUILD_DIR)")
    return TOOL


def sample(schema, seed, count, budget, tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    p = subprocess.run([tool(), "--schema", str(path), "--seed", str(seed), "--count", str(count), "--budget", str(budget)],
                       capture_output=True, timeout=60)
    return p


def test_suite_has_at_least_50_schemas():
    assert len(SCHEMAS) >= 50


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_samples_validate(name, tmp_path):
    schema = SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    jsonschema.Draft202012Validator.check_schema(schema)
    seen = set()
    for seed, budget in ((1, 30), (2, 120), (3, 400)):
        p = sample(schema, seed, 12, budget, tmp_path)
        assert p.returncode == 0, p.stderr.decode()
        lines = p.stdout.decode("utf-8").splitlines()
        assert len(lines) == 12
        for line in lines:
            text = json.loads(line)
            value = json.loads(text)
            errors = list(validator.iter_errors(value))
            assert not errors, f"{name} seed {seed}: {text!r}: {errors[0].message}"
            seen.add(text)
    if name not in ("null", "empty_only", "const_obj"):   # the rest have several instances
        assert len(seen) > 1, f"{name}: samples do not vary: {seen}"


def test_format_json_samples_are_objects(tmp_path):
    p = subprocess.run([tool(), "--object", "--seed", "9", "--count", "40", "--budget", "200"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    for line in p.stdout.decode("utf-8").splitlines():
        assert isinstance(json.loads(json.loads(line)), dict)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_schemas_are_refused_by_name(name, tmp_path):
    schema, needle = REFUSED[name]
    p = sample(schema, 1, 1, 10, tmp_path)
    assert p.returncode == 2
    assert needle in p.stderr.decode(), p.stderr.decode()
    assert p.stdout == b""
