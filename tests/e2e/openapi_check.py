"""The responses the end-to-end tests receive, checked against the service's
OpenAPI description (docs/openapi.json) with a JSON Schema 2020-12 validator
(Debian's python3-jsonschema): test_serve.Client calls check() on every
response, and conftest fails the test that received one the description
does not allow. PYEXEC_OPENAPI_CHECK=0 turns the check off.

What is checked: the path and method are described (else the answer must
be an error), the status is among the operation's responses (or its
`default`), the media type is one it lists, a JSON body validates against
its schema, each result event of a stream validates, and the headers the
response describes have values their schemas allow (X-Request-Id, which
every response has, and those marked required must be present). Paths
outside /api/ and /health are pages for people (the playground), not the
API, and are not checked."""
import json
import os
import pathlib
import re

try:
    from jsonschema import Draft202012Validator
except ImportError:  # test_openapi.py fails without it; the others run unchecked
    Draft202012Validator = None

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCUMENT_PATH = ROOT / "docs" / "openapi.json"
ENABLED = os.environ.get("PYEXEC_OPENAPI_CHECK", "1") != "0" and Draft202012Validator is not None

# What check() found wrong, for conftest to report at the test's end.
VIOLATIONS = []

_doc = None
_validators = {}
_routes = None


def document():
    global _doc
    if _doc is None:
        _doc = json.loads(DOCUMENT_PATH.read_text())
    return _doc


def validator(schema):
    """A compiled validator of schema, whose $refs point into the document
    (compiled once per schema)."""
    key = json.dumps(schema, sort_keys=True)
    v = _validators.get(key)
    if v is None:
        root = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": document()["components"], "allOf": [schema]}
        v = _validators[key] = Draft202012Validator(root)
    return v


def schema_ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def errors(schema, instance):
    """The validation errors of instance, as readable lines (empty: valid)."""
    out = []
    for e in sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(map(str, e.absolute_path)) or "(top)"
        out.append(f"{where}: {e.message[:300]}")
        # anyOf/oneOf: say why each branch failed
        for sub in (e.context or [])[:6]:
            out.append(f"    {'/'.join(map(str, sub.absolute_path)) or '(top)'}: {sub.message[:200]}")
    return out


def resolve(obj):
    """obj with one level of $ref into the document followed."""
    while isinstance(obj, dict) and "$ref" in obj:
        node = document()
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def routes():
    """[(regex, path item)], literal paths before templated ones."""
    global _routes
    if _routes is None:
        items = sorted(document()["paths"].items(), key=lambda kv: "{" in kv[0])
        _routes = [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"), item)
                   for p, item in items]
    return _routes


def operation(method, path):
    """The operation of method on path (without its query), or None."""
    method = "get" if method.upper() == "HEAD" else method.lower()
    for rx, item in routes():
        if rx.match(path):
            return item.get(method)
    return None


def _header_value(schema, text):
    if schema.get("type") == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    return text


def sse_events(body):
    """[(event, data)] of a text/event-stream body."""
    events = []
    for block in body.decode(errors="replace").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if name is not None:
            events.append((name, "\n".join(data)))
    return events


def is_api(path):
    """Whether path is the API's, which the description covers."""
    return path.startswith("/api/") or path == "/health" or path.startswith("/health/")


def problems(method, path, status, headers, body):
    """What is wrong with one response, as lines (empty: as described)."""
    path = path.split("?", 1)[0]
    out = []
    if method.upper() == "OPTIONS" or not is_api(path):
        return out
    if not headers.get("X-Request-Id"):
        out.append("no X-Request-Id header")
    op = operation(method, path)
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if op is None:
        # An undescribed path or method: only refusals may answer it.
        if status < 400:
            out.append(f"{status} for a path and method the description lacks")
        elif body and method.upper() != "HEAD":
            out += errors(schema_ref("Error"), json.loads(body))
        return out
    responses = op["responses"]
    resp = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
    if resp is None:
        return [f"status {status} is not among the responses of {method} {path}: {sorted(responses)}"]
    resp = resolve(resp)
    for name, h in (resp.get("headers") or {}).items():
        h = resolve(h)
        value = headers.get(name)
        if value is None:
            if h.get("required"):
                out.append(f"header {name} is missing")
            continue
        for e in errors(h.get("schema", {}), _header_value(h.get("schema", {}), value)):
            out.append(f"header {name}: {e}")
    content = resp.get("content")
    if method.upper() == "HEAD" or not body:
        if content and status not in (204, 304) and method.upper() != "HEAD":
            out.append(f"an empty body, but {status} has content {sorted(content)}")
        return out
    if not content:
        return out + [f"a body of type {ctype!r}, but {status} describes none"]
    media = content.get(ctype)
    if media is None:
        return out + [f"Content-Type {ctype!r} is not among {sorted(content)}"]
    if ctype == "application/json":
        try:
            doc = json.loads(body)
        except ValueError as e:
            return out + [f"the body is not JSON: {e}"]
        out += errors(media.get("schema", {}), doc)
    elif ctype == "text/event-stream":
        kinds = media.get("x-events", {})
        for name, data in sse_events(body):
            if name not in kinds:
                out.append(f"an event {name!r} the description lacks")
                continue
            out += [f"event {name}: {e}" for e in errors(kinds[name], json.loads(data))]
    return out


def check(method, path, status, headers, body):
    """Record a violation when a response is not as described."""
    if not ENABLED:
        return
    found = problems(method, path, status, headers, body)
    if found:
        VIOLATIONS.append(f"{method} {path} -> {status}: " + "; ".join(found[:12]) + f"\n  body: {body[:400]!r}")


def check_result(doc, what):
    """Record a violation when doc (pyexec run --json's output) is not a Result."""
    if not ENABLED:
        return
    found = errors(schema_ref("Result"), doc)
    if found:
        VIOLATIONS.append(f"{what}: " + "; ".join(found[:12]))


def check_webhook(name, headers, body):
    """Record a violation when a callback the service sent (its headers and
    body) is not as the description's webhooks[name] says."""
    if not ENABLED:
        return
    op = document()["webhooks"][name]["post"]
    found = []
    for p in map(resolve, op["parameters"]):
        value = headers.get(p["name"])
        if value is None:
            if p.get("required"):
                found.append(f"header {p['name']} is missing")
            continue
        found += [f"header {p['name']}: {e}" for e in errors(p["schema"], value)]
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    media = op["requestBody"]["content"].get(ctype)
    if media is None:
        found.append(f"Content-Type {ctype!r} is not among {sorted(op['requestBody']['content'])}")
    else:
        found += errors(media["schema"], json.loads(body))
    if found:
        VIOLATIONS.append(f"webhook {name}: " + "; ".join(found[:12]) + f"\n  body: {body[:400]!r}")


def check_event(name, data, path="/api/execute"):
    """Record a violation when one event of a streamed answer (text/event-stream
    of POST path, 200) is not as described: name among its x-events, data
    (parsed) valid."""
    if not ENABLED:
        return
    kinds = resolve(operation("POST", path)["responses"]["200"])["content"]["text/event-stream"]["x-events"]
    found = [f"an event {name!r} the description lacks"] if name not in kinds else errors(kinds[name], data)
    if found:
        VIOLATIONS.append(f"POST {path} event {name}: " + "; ".join(found[:12]) + f"\n  data: {str(data)[:400]}")
