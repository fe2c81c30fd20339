"""Checks a structured-output answer that stopped at its token limit (done_reason "length"):
the text must be the start of some JSON document its schema accepts. A grammar guarantees
exactly that at every step, whether or not the model chooses to finish, so a test can assert
it at every seed instead of hoping the sampled path closes the document in time.

Independent of the grammar under test: the text is parsed here into a partial tree (complete
values, plus the one value still open at each level), complete values are validated with PyPI
`jsonschema`, and the open ones are checked against the keywords that can already be judged:
type, enum/const, maxLength, pattern and format (as partial regex matches, PyPI `regex`),
maxItems, prefixItems/items, property names under additionalProperties false, anyOf/oneOf/allOf
and local $ref. What cannot be judged before the end (required, minItems, minLength, number
ranges of an unfinished number) is left to the complete case.

    assert_answer(text, done_reason, schema)   # "stop": parses and validates; "length": prefix
"""
import json

import jsonschema
import regex

FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER

# what a value of each format looks like, loose enough for every string jsonschema accepts
FORMAT_RE = {
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "time": r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    "date-time": r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "email": r"[^@\s]+@[^@\s]+",
}
WS = " \t\n\r"
NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"


class Partial:
    """An unfinished value: kind is str/num/lit/arr/obj/none (nothing but whitespace yet)."""
    def __init__(self, kind, **kw):
        self.kind, self.key_done = kind, False
        self.__dict__.update(kw)


class Done:
    def __init__(self, value):
        self.value = value


class _Parser:
    def __init__(self, text):
        self.t, self.i = text, 0

    def fail(self, what):
        raise AssertionError(f"not a JSON prefix: {what} at offset {self.i}: {self.t[max(0, self.i - 40):self.i + 20]!r}")

    def ws(self):
        while self.i < len(self.t) and self.t[self.i] in WS:
            self.i += 1
        return self.i >= len(self.t)

    def value(self):
        if self.ws():
            return Partial("none")
        c = self.t[self.i]
        if c == '"':
            return self.string()
        if c == "[":
            return self.array()
        if c == "{":
            return self.object()
        if c in "-0123456789":
            return self.number()
        if c in "tfn":
            return self.literal()
        self.fail(f"unexpected {c!r}")

    def string(self):
        self.i += 1
        out = []
        while self.i < len(self.t):
            c = self.t[self.i]
            if c == '"':
                self.i += 1
                return Done("".join(out))
            if c == "\\":
                esc = self.t[self.i:self.i + 6] if self.t[self.i + 1:self.i + 2] == "u" else self.t[self.i:self.i + 2]
                if len(esc) < 2 or (esc[1] == "u" and len(esc) < 6):
                    if not regex.fullmatch(r'\\(?:u[0-9a-fA-F]{0,3})?', esc):
                        self.fail("bad escape")
                    self.i = len(self.t)
                    break
                try:
                    out.append(json.loads('"' + esc + '"'))
                except ValueError:
                    self.fail("bad escape")
                self.i += len(esc)
                continue
            if ord(c) < 0x20:
                self.fail("control character in a string")
            out.append(c)
            self.i += 1
        return Partial("str", text="".join(out))

    def number(self):
        j = self.i
        while j < len(self.t) and self.t[j] in "-+0123456789.eE":
            j += 1
        run, self.i = self.t[self.i:j], j
        if j == len(self.t):   # may go on: the run must be a number's start
            if not regex.fullmatch(NUMBER, run, partial=True):
                self.fail("bad number")
            return Partial("num", text=run)
        if not regex.fullmatch(NUMBER, run):
            self.fail("bad number")
        return Done(json.loads(run))

    def literal(self):
        for word, v in (("true", True), ("false", False), ("null", None)):
            tail = self.t[self.i:self.i + len(word)]
            if tail == word:
                self.i += len(word)
                return Done(v)
            if self.i + len(tail) == len(self.t) and word.startswith(tail):
                self.i = len(self.t)
                return Partial("lit", text=tail, word=word)
        self.fail("bad literal")

    def array(self):
        self.i += 1
        items = []
        if self.ws():
            return Partial("arr", items=items, last=None)
        if self.t[self.i] == "]":
            self.i += 1
            return Done([])
        while True:
            v = self.value()
            if isinstance(v, Partial):
                return Partial("arr", items=items, last=v)
            items.append(v.value)
            if self.ws():
                return Partial("arr", items=items, last=None)
            c = self.t[self.i]
            self.i += 1
            if c == "]":
                return Done(items)
            if c != ",":
                self.fail("expected , or ]")

    def object(self):
        self.i += 1
        members = []
        first = True
        while True:
            if self.ws():
                return Partial("obj", members=members, key=None, value=None)
            if first and self.t[self.i] == "}":
                self.i += 1
                return Done({})
            first = False
            if self.t[self.i] != '"':
                self.fail("expected a key")
            k = self.string()
            if isinstance(k, Partial):
                return Partial("obj", members=members, key=k.text, key_done=False, value=None)
            if self.ws():
                return Partial("obj", members=members, key=k.value, key_done=True, value=None)
            if self.t[self.i] != ":":
                self.fail("expected :")
            self.i += 1
            v = self.value()
            if isinstance(v, Partial):
                return Partial("obj", members=members, key=k.value, key_done=True, value=v)
            members.append((k.value, v.value))
            if self.ws():
                return Partial("obj", members=members, key=None, value=None)
            c = self.t[self.i]
            self.i += 1
            if c == "}":
                if len({m[0] for m in members}) != len(members):
                    self.fail("duplicate key")
                return Done(dict(members))
            if c != ",":
                self.fail("expected , or }")


def _valid(value, schema, root):
    """jsonschema on a complete value; a subschema keeps the root for its $refs."""
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
    v = cls(root, format_checker=FORMAT_CHECKER)
    return (v if schema is root else v.evolve(schema=schema)).is_valid(value)


def _resolve(schema, root):
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#"), f"only local $ref is checked here: {ref}"
        node = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {"allOf": [node, rest]} if rest else node
        seen += 1
        assert seen < 100, "$ref loop"
    return schema


def _kind_types(p):
    if p.kind == "str":
        return {"string"}
    if p.kind == "num":
        return {"number"} if regex.search(r"[.eE]", p.text) else {"number", "integer"}
    if p.kind == "lit":
        return {"boolean"} if p.word in ("true", "false") else {"null"}
    return {"arr": {"array"}, "obj": {"object"}}[p.kind]


def _consistent(p, value):
    """Can the partial value p still become the complete value `value`?"""
    if p.kind == "none":
        return True
    if p.kind == "str":
        return isinstance(value, str) and value.startswith(p.text)
    if p.kind in ("num", "lit"):
        return not isinstance(value, (str, list, dict)) and json.dumps(value).startswith(p.text)
    if p.kind == "arr":
        if not isinstance(value, list) or len(value) < len(p.items) + (p.last is not None):
            return False
        if any(a != b or type(a) is not type(b) for a, b in zip(p.items, value)):
            return False
        return p.last is None or _consistent(p.last, value[len(p.items)])
    if not isinstance(value, dict):
        return False
    for k, v in p.members:
        if k not in value or value[k] != v:
            return False
    if p.key is None:
        return True
    if not p.key_done:
        return any(k.startswith(p.key) for k in value if k not in dict(p.members))
    return p.key in value and (p.value is None or _consistent(p.value, value[p.key]))


def _ok(p, schema, root):
    """Is the partial value p a start of some value `schema` accepts? Returns a reason or None."""
    if isinstance(p, Done):
        return None if _valid(p.value, schema, root) else f"{p.value!r} does not validate"
    schema = _resolve(schema, root)
    if schema is True or p.kind == "none":
        return None
    if schema is False:
        return "false schema"
    for key in ("allOf",):
        for sub in schema.get(key, []):
            why = _ok(p, sub, root)
            if why:
                return why
    for key in ("anyOf", "oneOf"):
        if key in schema:
            whys = [_ok(p, sub, root) for sub in schema[key]]
            if all(whys):
                return f"{key}: no branch fits ({'; '.join(whys)})"
    if "const" in schema and not _consistent(p, schema["const"]):
        return f"cannot become const {schema['const']!r}"
    if "enum" in schema and not any(_consistent(p, v) for v in schema["enum"]):
        return f"cannot become one of {schema['enum']!r}"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not _kind_types(p) & set(types):
            return f"a {p.kind} where the type is {types}"
    if p.kind == "str":
        s = p.text
        if "maxLength" in schema and len(s) > schema["maxLength"]:
            return f"string over maxLength {schema['maxLength']}"
        if "pattern" in schema and not regex.search(schema["pattern"], s, partial=True):
            return f"{s!r} cannot match pattern {schema['pattern']}"
        fmt = schema.get("format")
        if fmt in FORMAT_RE and not regex.fullmatch(FORMAT_RE[fmt], s, partial=True):
            return f"{s!r} cannot become a {fmt}"
    elif p.kind == "num":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        if lo is not None and lo >= 0 and p.text.startswith("-"):
            return f"negative number under minimum {lo}"
    elif p.kind == "arr":
        n = len(p.items) + (p.last is not None)
        if "maxItems" in schema and n > schema["maxItems"]:
            return f"{n} items over maxItems {schema['maxItems']}"
        prefix = schema.get("prefixItems", [])
        rest = schema.get("items", True)
        for k, item in enumerate(p.items + ([p.last] if p.last is not None else [])):
            sub = prefix[k] if k < len(prefix) else rest
            why = _ok(item if isinstance(item, Partial) else Done(item), sub, root)
            if why:
                return f"item {k}: {why}"
    elif p.kind == "obj":
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        n = len(p.members) + (p.key is not None)
        if "maxProperties" in schema and n > schema["maxProperties"]:
            return f"{n} properties over maxProperties"
        names = [k for k, _ in p.members]
        if len(set(names)) != len(names) or (p.key_done and p.key in names):
            return "duplicate key"
        for k, v in p.members:
            sub = props.get(k, extra)
            why = _ok(Done(v), sub, root)
            if why:
                return f"property {k!r}: {why}"
        if p.key is not None:
            if not p.key_done:
                if extra is False and not any(k.startswith(p.key) for k in props if k not in names):
                    return f"no property starts {p.key!r}"
            else:
                sub = props.get(p.key, extra)
                if sub is False:
                    return f"property {p.key!r} is not allowed"
                if p.value is not None:
                    why = _ok(p.value, sub, root)
                    if why:
                        return f"property {p.key!r}: {why}"
    return None


def assert_prefix(text, schema):
    """text is the start of a document `schema` accepts (the whole document when complete)."""
    ps = _Parser(text)
    v = ps.value()
    if ps.i < len(text) and not ps.ws():
        ps.fail("text after the value")
    if isinstance(v, Partial) and v.kind == "none" and text.strip() == "" and text != text.lstrip():
        ps.fail("leading whitespace only")
    why = _ok(v, schema, schema)
    assert why is None, f"not the start of a valid document: {why}: {text[-200:]!r}"


REPEAT_STOP = 31   # serve ends a generation whose token text repeats this often as a plain "stop"


def assert_answer(text, done_reason, schema, tokens=None):
    """A constrained answer: complete and valid when the model stopped, a valid start when it
    ran out of tokens. Ollama's repeat guard (§1.2.8) also ends a stuck answer as "stop":
    with the answer's tokens (logprobs) given, a "stop" whose last REPEAT_STOP tokens are one
    text counts as cut, not finished. Returns the parsed value, or None for a cut answer."""
    if done_reason == "stop" and tokens and len(tokens) >= REPEAT_STOP and \
            len({t.strip() for t in tokens[-REPEAT_STOP:]}) == 1:
        done_reason = "length"
    if done_reason == "stop":
        v = json.loads(text)
        assert _valid(v, schema, schema), (v, schema)
        return v
    assert done_reason == "length", done_reason
    assert_prefix(text, schema)
    return None
