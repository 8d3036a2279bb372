"""The OpenAPI description (docs/openapi.json) against the code it describes.

GET /api/openapi.json serves the file of the source tree, embedded at build
time. These tests make either side changed alone fail: the request
validator's fields, ranges, lengths, defaults and policy names are taken
from the running service (boundary values sent, the field a 400 names read
back, the limits a run reports) and from the C sources' tables (the
request's known fields, the routes, the error codes, the run statuses), and
compared with what the description says. Every response the other e2e
tests receive is checked against it too (openapi_check.py, conftest.py).
"""
import json
import os
import pathlib
import re
import secrets

import pytest

import openapi_check
from conftest import ROOT
from test_serve import JSON_HEADERS, config_output, parse_print_config, serving, start_server

DOC = openapi_check.document()
SCHEMAS = DOC["components"]["schemas"]
REQUEST = SCHEMAS["ExecuteRequest"]["properties"]
SRC = ROOT / "src"
ID_RX = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A service with the default configuration the description shows
    (the rate limit off: these tests send many requests)."""
    s = start_server(tmp_path_factory.mktemp("openapi"), env={"RATE_LIMIT_MAX": "0"}, default_policy=None)
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


@pytest.fixture
def serve(tmp_path):
    yield from serving(tmp_path, start_server)


def refused_field(srv, body, headers=None, path="/api/execute"):
    """(HTTP status, error field) of a refused request."""
    r = srv.post(path, body, headers)
    assert r.status in (400, 413), r
    return r.status, r.error().get("field")


def passes(srv, body, field, path="/api/execute"):
    """body is refused for a field checked later, not for `field`: the
    value under test was accepted without anything running."""
    status, got = refused_field(srv, body, path=path)
    assert got != field, f"{field} refused: {body if len(str(body)) < 300 else str(body)[:300]}"
    return got


def defaults():
    """The service's configuration defaults, from its table of keys."""
    p = config_output("--print-config")
    assert p.returncode == 0, p.stderr
    return {k: v for k, (v, _) in parse_print_config(p.stdout.decode()).items()}


def walk(node, where=""):
    """Every (path, dict) in the description."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


# ---------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------


def test_served_description_is_the_file_in_the_tree(srv):
    r = srv.get("/api/openapi.json")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "application/json"
    assert r.body == openapi_check.DOCUMENT_PATH.read_bytes()
    assert r.headers["Cache-Control"] == "no-cache"
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag), etag
    again = srv.get("/api/openapi.json", {"If-None-Match": etag})
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == etag, again
    other = srv.get("/api/openapi.json", {"If-None-Match": '"0"'})
    assert other.status == 200 and other.body == r.body
    assert srv.get("/health").json()["version"] == DOC["info"]["version"]


def test_description_is_an_openapi_3_1_document():
    """No OpenAPI meta-schema ships with Debian 12 (openapi-spec-validator is
    not packaged): the structure OpenAPI 3.1 requires is checked here, and
    every schema against JSON Schema 2020-12's meta-schema. With
    PYEXEC_OPENAPI_METASCHEMA naming a copy of the OpenAPI Initiative's
    schemas/v3.1/schema.json, the document is validated against it too."""
    from jsonschema import Draft202012Validator

    meta = os.environ.get("PYEXEC_OPENAPI_METASCHEMA")
    if meta:
        found = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
                 for e in Draft202012Validator(json.loads(pathlib.Path(meta).read_text())).iter_errors(DOC)]
        assert not found, found[:10]
    assert DOC["openapi"] == "3.1.0"
    assert {"title", "version"} <= set(DOC["info"])
    for where, node in walk(DOC):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/"), where
            assert openapi_check.resolve({"$ref": ref}) is not None, f"{where}: {ref} does not resolve"
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
    operation_ids = []
    operations = [(p, m, op) for p, item in DOC["paths"].items() for m, op in item.items()]
    operations += [(f"webhook {w}", m, op) for w, item in DOC["webhooks"].items() for m, op in item.items()]
    for path, method, op in operations:
        assert method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}, (path, method)
        operation_ids.append(op["operationId"])
        assert op["responses"], (path, method)
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5](\d\d|XX)|default", status), (path, status)
        declared = {p["name"] for p in map(openapi_check.resolve, op.get("parameters", [])) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, declared)
        for p in map(openapi_check.resolve, op.get("parameters", [])):
            assert p["in"] in {"query", "header", "path", "cookie"} and ("schema" in p) != ("content" in p), p
            assert p["in"] != "path" or p["required"] is True, p
        for schema in (op.get("requestBody", {}).get("content") or {}).values():
            Draft202012Validator.check_schema(schema["schema"])
    assert len(operation_ids) == len(set(operation_ids)), operation_ids
    for name, scheme in DOC["components"]["securitySchemes"].items():
        assert scheme["type"] in {"apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"}, name
    for requirement in DOC["security"]:
        assert set(requirement) <= set(DOC["components"]["securitySchemes"]), requirement
    hooks = DOC["webhooks"]["submissionDone"]["post"]
    assert {p["name"] for p in hooks["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}


# ---------------------------------------------------------------------------
# Routes, methods, security
# ---------------------------------------------------------------------------


def c_routes():
    """The paths src/service/http.c's route_of() knows, {name} and {id}
    where it takes a segment."""
    text = (SRC / "service" / "http.c").read_text()
    body = re.search(r"static enum route route_of\(const char \*url\) \{(.*?)\n\}", text, re.S).group(1)
    paths = set(re.findall(r'"(/[a-z/.]+)"', body))
    prefixed = {p for p in paths if p.endswith("/")}
    names = {"/api/jobs/": "{name}", "/api/submissions/": "{id}", "/playground/": "{file}"}
    return (paths - prefixed) | {p + names[p] for p in prefixed}


def test_every_route_is_described():
    """Every route of the API (pages such as the playground apart)."""
    assert {p for p in c_routes() if openapi_check.is_api(p)} == set(DOC["paths"])
    # metrics label every route by the same names
    text = (SRC / "service" / "metrics.c").read_text()
    labels = set(re.findall(r'\[ROUTE_\w+\] = "(/[^"]+)"', text))
    assert {p for p in labels if openapi_check.is_api(p)} == set(DOC["paths"])


def test_methods_are_those_the_service_allows(srv):
    """OPTIONS answers each path's Allow header: the described methods,
    HEAD with GET; a method not described is 405."""
    for path, item in DOC["paths"].items():
        concrete = path.replace("{name}", "compose").replace("{id}", "0" * 32)
        r = srv.request("OPTIONS", concrete)
        assert r.status == 204, (path, r)
        allowed = {m.strip() for m in r.headers["Allow"].split(",")} - {"OPTIONS"}
        described = {m.upper() for m in item} | ({"HEAD"} if "get" in item else set())
        assert allowed == described, (path, allowed, described)
        for m in {"GET", "POST", "DELETE", "PUT"} - described:
            assert srv.request(m, concrete).status == 405, (path, m)


def test_security_as_the_service_requires(serve):
    """With API keys set, what the description marks public (security
    [{}]) answers without a key and everything else is 401."""
    s = serve(env={"API_KEYS": "k-0123456789abcdef"})
    client = s.new_client()
    for path, item in DOC["paths"].items():
        concrete = path.replace("{name}", "compose").replace("{id}", "0" * 32)
        for method, op in item.items():
            public = op.get("security", DOC["security"]) == [{}]
            r = client.request(method.upper(), concrete, "{}" if method == "post" else None,
                               JSON_HEADERS if method == "post" else None)
            assert (r.status != 401) == public, (method, path, r)
            if not public:
                assert any("bearer" in req for req in DOC["security"]) and r.headers["WWW-Authenticate"]
    client.close()


# ---------------------------------------------------------------------------
# The request: fields, ranges, lengths, defaults
# ---------------------------------------------------------------------------


def test_request_fields_are_the_parsers():
    """api.c's known_fields[] is ExecuteRequest's properties; the case and
    file objects' keys are their schemas'."""
    text = (SRC / "service" / "api.c").read_text()
    table = re.search(r"known_fields\[\] = \{(.*?)\};", text, re.S).group(1)
    assert set(re.findall(r'"(\w+)"', table)) == set(REQUEST)
    assert SCHEMAS["ExecuteRequest"]["required"] == ["code"]
    assert SCHEMAS["ExecuteRequest"]["additionalProperties"] is False
    assert set(SCHEMAS["TestCase"]["properties"]) == {"name", "stdin", "args", "expectedOutput"}
    assert set(SCHEMAS["File"]["properties"]) == {"name", "content", "contentBase64"}


def test_every_field_is_known_to_the_service(srv):
    """Each described field with a value of the wrong type is refused for
    that field, not as unknown; a field not described is unknown."""
    for name, schema in REQUEST.items():
        wrong = {"object": 1, "boolean": 1, "integer": "1", "array": 1}.get(schema.get("type"), {})
        valid = {"code": "pass", "runTests": True, "testCode": "pass", "tests": [{"expectedOutput": ""}]}
        status, field = refused_field(srv, dict(valid, **{name: wrong}))
        assert field == name, (name, field)
    r = srv.execute({"code": "pass", "timeOut": 5})
    assert r.status == 400 and r.error()["field"] == "timeOut"


def test_configured_limits_are_the_descriptions():
    """Each value the description takes from the configuration
    (x-pyexec-config) is that key's default."""
    config = defaults()
    seen = set()
    for where, node in walk(DOC):
        key = node.get("x-pyexec-config")
        if not key:
            continue
        seen.add(key)
        if key == "POLICIES":
            assert node["enum"] == config["POLICIES"].split(","), where
            assert node["default"] == config["DEFAULT_POLICY"], where
            continue
        bound = node.get("maximum", node.get("maxLength", node.get("maxItems")))
        assert bound == int(config[key]), (where, key, bound, config[key])
        if "default" in node:
            assert node["default"] == int(config[key]), (where, key)
    assert seen >= {"EXECUTION_TIMEOUT", "MEMORY_LIMIT", "MAX_OUTPUT_LENGTH", "MAX_CODE_LENGTH", "MAX_TESTS",
                    "REQUEST_TIME_LIMIT", "POLICIES", "MAX_BATCH"}


@pytest.mark.parametrize("name", ["timeout", "cpuTimeout", "memoryLimit", "maxOutput"])
def test_integer_range(srv, name):
    """minimum and maximum are where the service starts refusing (code is
    left out, so an accepted value is refused for code, later)."""
    lo, hi = REQUEST[name]["minimum"], REQUEST[name]["maximum"]
    assert passes(srv, {name: lo}, name) == "code"
    assert passes(srv, {name: hi}, name) == "code"
    for bad in (lo - 1, hi + 1):
        r = srv.execute({name: bad})
        assert r.status == 400 and r.error()["field"] == name, r
        assert f"between {lo} and {hi}" in r.error()["message"], r
    assert refused_field(srv, {name: float(lo)}) == (400, name)


def test_defaults_are_what_a_run_gets(srv):
    r = srv.execute({"code": "pass"})
    assert r.status == 200, r
    limits = r.json()["limits"]
    assert limits["timeoutMs"] == REQUEST["timeout"]["default"]
    assert limits["cpuTimeMs"] == REQUEST["timeout"]["default"]  # cpuTimeout's default is timeout
    assert limits["memoryMb"] == REQUEST["memoryLimit"]["default"]
    assert limits["maxOutput"] == REQUEST["maxOutput"]["default"]
    r = srv.execute({"code": "import socket"})
    assert f"policy '{REQUEST['policy']['default']}'" in r.json()["message"], r


def test_policy_names(srv):
    for name in REQUEST["policy"]["enum"]:
        assert passes(srv, {"policy": name}, "policy") == "code"
    r = srv.execute({"code": "pass", "policy": "nope"})
    assert r.status == 400 and r.error()["field"] == "policy"
    available = r.error()["message"].rsplit("available: ", 1)[1]
    assert available.split(",") == REQUEST["policy"]["enum"]


def test_program_lengths_in_characters(srv):
    """code and testCode: maxLength counts characters (code points) as
    JSON Schema does; one more is 413."""
    n = REQUEST["code"]["maxLength"]
    assert passes(srv, {"code": "é" * n, "files": "x"}, "code") == "files"
    assert refused_field(srv, {"code": "é" * (n + 1)}) == (413, "code")
    n = REQUEST["testCode"]["maxLength"]
    body = {"code": "pass", "runTests": True, "moduleName": "1"}
    assert passes(srv, dict(body, testCode="é" * n), "testCode") == "moduleName"
    assert refused_field(srv, dict(body, testCode="é" * (n + 1))) == (413, "testCode")


def test_string_fields(srv):
    base = {"code": "pass", "runTests": True, "testCode": "pass", "files": "x"}
    n = REQUEST["moduleName"]["maxLength"]
    assert passes(srv, dict(base, moduleName="m" * n), "moduleName") == "files"
    assert refused_field(srv, dict(base, moduleName="m" * (n + 1))) == (400, "moduleName")
    pattern = re.compile(REQUEST["moduleName"]["pattern"])
    for bad in ("1x", "a-b", "main", ""):
        assert refused_field(srv, dict(base, moduleName=bad)) == (400, "moduleName"), bad
        assert not pattern.search(bad) or bad == REQUEST["moduleName"]["not"]["const"], bad
    assert pattern.search("_m1") and passes(srv, dict(base, moduleName="_m1"), "moduleName") == "files"
    n = REQUEST["exerciseId"]["oneOf"][0]["maxLength"]
    assert passes(srv, {"exerciseId": "e" * n}, "exerciseId") == "code"
    assert passes(srv, {"exerciseId": 7}, "exerciseId") == "code"
    for bad in ("e" * (n + 1), 1.5, None, [], True):
        assert refused_field(srv, {"exerciseId": bad}) == (400, "exerciseId"), bad
    lo, hi = REQUEST["userId"]["minLength"], REQUEST["userId"]["maxLength"]
    assert passes(srv, {"userId": "u" * hi}, "userId") == "code"
    assert passes(srv, {"userId": "u" * lo}, "userId") == "code"
    for bad in ("u" * (hi + 1), "u" * (lo - 1)):
        assert refused_field(srv, {"userId": bad}) == (400, "userId")


def test_base64_fields(srv):
    """stdinBase64 and contentBase64: the pattern is what the service
    decodes; each is the alternative of its text field, never beside it."""
    # fullmatch: ECMA-262's $, which JSON Schema uses, matches no newline
    pattern = re.compile(REQUEST["stdinBase64"]["pattern"])
    for good in ("", "AA==", "AAE=", "AAEC", "/+9aZQ=="):
        assert pattern.fullmatch(good), good
        assert passes(srv, {"code": "pass", "stdinBase64": good, "args": "x"}, "stdinBase64") == "args", good
        assert passes(srv, {"code": "pass", "files": [{"name": "b", "contentBase64": good}], "args": "x"},
                      "files[0].contentBase64") == "args", good
    for bad in ("A", "AA=", "AA==\n", "A===", "@@@@", "AA==AA=="):
        assert not pattern.fullmatch(bad), bad
        assert refused_field(srv, {"code": "pass", "stdinBase64": bad}) == (400, "stdinBase64"), bad
        assert refused_field(srv, {"code": "pass", "files": [{"name": "b", "contentBase64": bad}]}) == \
            (400, "files[0].contentBase64"), bad
    assert SCHEMAS["ExecuteRequest"]["not"] == {"required": ["stdin", "stdinBase64"]}
    assert refused_field(srv, {"code": "pass", "stdin": "", "stdinBase64": ""}) == (400, "stdinBase64")
    assert {"required": ["content"]} in SCHEMAS["File"]["oneOf"] and len(SCHEMAS["File"]["oneOf"]) == 2
    assert refused_field(srv, {"code": "pass", "files": [{"name": "b", "content": "", "contentBase64": ""}]}) == \
        (400, "files[0].contentBase64")


def test_arrays(srv):
    args = REQUEST["args"]
    n, size = args["maxItems"], args["items"]["maxLength"]
    later = {"code": "pass", "tests": []}
    assert passes(srv, dict(later, args=["a"] * n), "args") == "tests"
    assert refused_field(srv, dict(later, args=["a"] * (n + 1))) == (400, "args")
    assert passes(srv, dict(later, args=["a" * size]), "args[0]") == "tests"
    assert refused_field(srv, dict(later, args=["a" * (size + 1)])) == (400, "args[0]")

    files = REQUEST["files"]
    n = files["maxItems"]
    name = SCHEMAS["File"]["properties"]["name"]
    later = {"code": "pass", "args": "x"}
    many = [{"name": f"f{i}.txt", "content": ""} for i in range(n + 1)]
    assert passes(srv, dict(later, files=many[:n]), "files") == "args"
    assert refused_field(srv, dict(later, files=many)) == (400, "files")
    assert passes(srv, dict(later, files=[{"name": "n" * name["maxLength"], "content": ""}]), "files[0].name") == "args"
    assert refused_field(srv, dict(later, files=[{"name": "n" * (name["maxLength"] + 1), "content": ""}])) == \
        (400, "files[0].name")
    for bad in name["not"]["enum"] + ["a/b", "a\nb", ""]:
        assert refused_field(srv, dict(later, files=[{"name": bad, "content": ""}])) == (400, "files[0].name"), bad
    assert refused_field(srv, dict(later, files=[{"name": "a"}])) == (400, "files[0].content")
    assert refused_field(srv, dict(later, files=[{"name": "a", "content": "", "mode": 1}])) == (400, "files[0].mode")

    tests = REQUEST["tests"]
    case = {"expectedOutput": ""}
    later = {"code": "pass", "totalTimeout": 0}
    assert passes(srv, dict(later, tests=[case] * tests["maxItems"]), "tests") == "totalTimeout"
    assert refused_field(srv, dict(later, tests=[case] * (tests["maxItems"] + 1))) == (400, "tests")
    assert refused_field(srv, dict(later, tests=[case] * (tests["minItems"] - 1))) == (400, "tests")
    n = SCHEMAS["TestCase"]["properties"]["name"]["maxLength"]
    assert passes(srv, dict(later, tests=[dict(case, name="t" * n)]), "tests[0].name") == "totalTimeout"
    assert refused_field(srv, dict(later, tests=[dict(case, name="t" * (n + 1))])) == (400, "tests[0].name")
    assert refused_field(srv, dict(later, tests=[{}])) == (400, "tests[0].expectedOutput")


def test_total_timeout(srv):
    t = REQUEST["totalTimeout"]
    case = [{"expectedOutput": ""}]
    for bad in (t["minimum"] - 1, t["maximum"] + 1):
        r = srv.execute({"code": "pass", "tests": case, "totalTimeout": bad})
        assert r.status == 400 and r.error()["field"] == "totalTimeout", r
        assert f"between {t['minimum']} and {t['maximum']}" in r.error()["message"], r
    r = srv.execute({"code": "pass", "tests": case, "totalTimeout": t["maximum"]})
    assert r.status == 200 and r.json()["verdict"] == "accepted", r


# ---------------------------------------------------------------------------
# Submissions
# ---------------------------------------------------------------------------


def test_batch_and_ids_limits(srv):
    n = SCHEMAS["SubmissionBatch"]["properties"]["submissions"]["maxItems"]
    batch = [{"code": "pass"}] * (n - 1) + [{"code": 1}]
    r = srv.post("/api/submissions", {"submissions": batch})
    assert r.status == 400 and r.error()["field"] == f"submissions[{n - 1}].code", r
    r = srv.post("/api/submissions", {"submissions": batch + [{"code": "pass"}]})
    assert r.status == 413 and r.error()["code"] == "batch_too_large", r
    ids = DOC["paths"]["/api/submissions"]["get"]["parameters"][1]["schema"]
    assert ids["maxItems"] == n
    many = [secrets.token_hex(16) for _ in range(n + 1)]
    r = srv.get("/api/submissions?ids=" + ",".join(many[:n]))
    assert r.status == 200 and {s["state"] for s in r.json()["submissions"]} == {"unknown"}, r
    r = srv.get("/api/submissions?ids=" + ",".join(many))
    assert r.status == 413 and r.error()["code"] == "batch_too_large", r


def test_idempotency_key(srv):
    key = next(p for p in DOC["paths"]["/api/submissions"]["post"]["parameters"] if p.get("name") == "Idempotency-Key")
    n = key["schema"]["maxLength"]
    r = srv.post("/api/submissions", {"code": 1}, {"Idempotency-Key": "k" * n})
    assert r.status == 400 and r.error()["code"] == "invalid_request", r
    for bad in ("k" * (n + 1), "a b"):
        r = srv.post("/api/submissions", {"code": 1}, {"Idempotency-Key": bad})
        assert r.status == 400 and r.error()["code"] == "invalid_idempotency_key", r


def test_submission_answers(srv):
    r = srv.post("/api/submissions", {"code": "print(1)"})
    assert r.status == 202, r
    sid = r.json()["id"]
    assert ID_RX.match(sid) and r.headers["Location"] == f"/api/submissions/{sid}"
    r = srv.post("/api/submissions?wait=10000", {"code": "print(1)"})
    assert r.status in (200, 202), r
    r = srv.get(f"/api/submissions/{sid}")
    assert r.status == 200, r
    assert srv.get(f"/api/submissions/{secrets.token_hex(16)}").status == 404


# ---------------------------------------------------------------------------
# Enumerations the C code defines
# ---------------------------------------------------------------------------


def test_error_codes_are_the_sources():
    """Every error code the C code answers with, and only those."""
    codes = set()
    for f in SRC.rglob("*.c"):
        text = f.read_text()
        codes |= set(re.findall(r'(?:respond_error|api_error_set|refuse)\(\s*[\w>&.-]+,\s*(?:\d{3}|[\w.>-]+),\s*'
                                r'"([a-z_]+)"', text))
    assert codes == set(SCHEMAS["ErrorBody"]["properties"]["code"]["enum"])


def test_statuses_and_states_are_the_sources(srv):
    by_status = srv.get("/api/stats").json()["byStatus"]
    assert list(by_status) == SCHEMAS["Status"]["enum"]
    text = (SRC / "service" / "queue.c").read_text()
    table = re.search(r"queue_state_table\[\] = \{(.*?)\};", text, re.S).group(1)
    states = re.findall(r'"(\w+)"', table)
    # and the two the service adds: an id it does not know, a queue it cannot read
    assert states + ["unknown", "unavailable"] == SCHEMAS["SubmissionState"]["enum"]
    text = (SRC / "service" / "submissions.c").read_text()
    assert '"state", "unknown"' in text and '"state", "unavailable"' in text
