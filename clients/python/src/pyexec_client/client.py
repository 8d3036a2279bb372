"""The client of the pyexec HTTP service (standard library only)."""
from __future__ import annotations

import http.client
import json
import random
import time
import urllib.parse
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union)

from ._version import __version__
from .errors import PyexecError, TransportError, WaitTimeout, error_from_response
from .sse import SSEParser
from .types import (ExecuteRequest, FileSpec, Health, Job, JsonObject, Readiness, Result, StreamEvent, Submission,
                    TestSpec)

DEFAULT_URL = "http://127.0.0.1:3002"
RETRY_STATUSES = (429, 503)

RequestLike = Union[ExecuteRequest, Mapping[str, Any], str]
"""A request: an ExecuteRequest, a dict of the API's camelCase fields, or
just the code."""
OutputCallback = Callable[[str], None]
ProgressCallback = Callable[[Submission], None]


class _Answer:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise PyexecError(f"HTTP {self.status}: the answer is not JSON: {self.body[:200]!r}") from e


def _request_json(req: RequestLike) -> JsonObject:
    if isinstance(req, str):
        return {"code": req}
    return req.to_json() if isinstance(req, ExecuteRequest) else dict(req)


class Client:
    """A client of one pyexec service.

    base_url: the service, such as "http://127.0.0.1:3002"; api_key: sent as
    `Authorization: Bearer KEY` when given; timeout: seconds to wait for the
    service on each socket operation (connecting, each read), raised
    automatically for a call whose run may take longer (an execution's
    limits, a job, `?wait=`); retries: how many times a call that may be
    repeated safely (a GET, or a POST with an Idempotency-Key) is sent again
    after a 429 or 503, waiting as Retry-After says (at most max_retry_wait
    seconds: a longer Retry-After is raised at once). POST /api/execute is
    never repeated: it would run the program twice.
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: Optional[str] = None, *, timeout: float = 60.0,
                 retries: int = 3, max_retry_wait: float = 30.0, headers: Optional[Mapping[str, str]] = None) -> None:
        u = urllib.parse.urlsplit(base_url.rstrip("/"))
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"base_url must be http(s)://HOST[:PORT][/PATH], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._scheme = u.scheme
        self._host = u.hostname
        self._port = u.port
        self._prefix = u.path
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.headers = {"User-Agent": f"pyexec-client-python/{__version__}", **(headers or {})}
        self.submissions = Submissions(self)
        self.jobs = Jobs(self)

    # -- transport ---------------------------------------------------------

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, extra: Optional[Mapping[str, str]], has_body: bool) -> Dict[str, str]:
        h = dict(self.headers)
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if has_body:
            h["Content-Type"] = "application/json"
        h.setdefault("Accept", "application/json")
        h.update(extra or {})
        return h

    def _open(self, method: str, path: str, body: Optional[Any], headers: Optional[Mapping[str, str]],
              timeout: Optional[float]) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        data = json.dumps(body).encode() if body is not None else None
        conn = self._connection(timeout)
        try:
            conn.request(method, self._prefix + path, body=data, headers=self._headers(headers, data is not None))
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise TransportError(f"{method} {self.base_url}{path}: {e or type(e).__name__}") from e

    def _send(self, method: str, path: str, body: Optional[Any], headers: Optional[Mapping[str, str]],
              timeout: Optional[float]) -> _Answer:
        conn, resp = self._open(method, path, body, headers, timeout)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(f"{method} {self.base_url}{path}: {e or type(e).__name__}") from e
        finally:
            conn.close()
        return _Answer(resp.status, dict(resp.getheaders()), data)

    def _call(self, method: str, path: str, body: Optional[Any] = None, *,
              headers: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
              ok: Sequence[int] = (200,)) -> _Answer:
        """Send, retrying a repeatable call on 429/503; raise ApiError for a
        refusal (any status not in ok whose body is the error shape)."""
        idempotent = method in ("GET", "HEAD") or any(k.lower() == "idempotency-key" for k in (headers or {}))
        attempt = 0
        while True:
            a = self._send(method, path, body, headers, timeout if timeout is not None else self.timeout)
            if a.status in ok:
                return a
            try:
                doc = json.loads(a.body)
            except ValueError:
                doc = None
            # A run that ended in internal_error is a result with HTTP 500.
            if a.status == 500 and isinstance(doc, dict) and "status" in doc and "error" not in doc:
                return a
            err = error_from_response(a.status, a.headers, doc if isinstance(doc, dict) else None,
                                      a.body.decode(errors="replace"))
            if idempotent and a.status in RETRY_STATUSES and attempt < self.retries:
                wait = err.retry_after if err.retry_after is not None else min(0.5 * 2 ** attempt, 8.0)
                if wait <= self.max_retry_wait:
                    time.sleep(wait + random.uniform(0, 0.1))
                    attempt += 1
                    continue
            raise err

    def _run_timeout(self, req: JsonObject) -> float:
        """A socket timeout that outlasts the run the request asks for."""
        limit_ms = req.get("totalTimeout") or 0
        if not limit_ms:
            per = req.get("timeout") or 0
            limit_ms = per * max(1, len(req.get("tests") or ())) if per else 0
        # Without a limit in the request, the service's own applies, which
        # the client does not know: its timeout is the caller's choice.
        return max(self.timeout, limit_ms / 1000 + 30) if limit_ms else self.timeout

    # -- executions --------------------------------------------------------

    def execute(self, code: str, *, stdin: Optional[Union[str, bytes]] = None, args: Optional[Sequence[str]] = None,
                files: Optional[Union[Mapping[str, Union[str, bytes]], Sequence[FileSpec]]] = None,
                timeout: Optional[int] = None,
                cpu_timeout: Optional[int] = None, memory_limit: Optional[int] = None,
                max_output: Optional[int] = None, policy: Optional[str] = None,
                exercise_id: Optional[Union[str, int]] = None, user_id: Optional[str] = None,
                run_tests: bool = False, test_code: Optional[str] = None, module_name: Optional[str] = None,
                tests: Optional[Sequence[TestSpec]] = None, total_timeout: Optional[int] = None,
                request_id: Optional[str] = None) -> Result:
        """Run a program (POST /api/execute) and return its result.

        timeout, cpu_timeout and total_timeout are milliseconds, memory_limit
        megabytes, max_output bytes, as the API has them; files maps names to
        contents (or is a list of {"name", "content"}); tests are TestCase
        objects or dicts of the API's case fields. A refusal raises ApiError.
        """
        req = ExecuteRequest(code, stdin, args, files, timeout, cpu_timeout, memory_limit, max_output, policy,
                             exercise_id, user_id, run_tests, test_code, module_name, tests, total_timeout)
        return self.execute_request(req, request_id=request_id)

    def execute_request(self, request: RequestLike, *, request_id: Optional[str] = None) -> Result:
        """POST /api/execute with a prepared request: an ExecuteRequest, or a
        dict of the API's camelCase fields as they are sent."""
        body = _request_json(request)
        headers = {"X-Request-Id": request_id} if request_id else None
        a = self._call("POST", "/api/execute", body, headers=headers, timeout=self._run_timeout(body))
        return Result.from_json(a.json())

    def stream(self, code: str, *, stdin: Optional[Union[str, bytes]] = None, args: Optional[Sequence[str]] = None,
               files: Optional[Union[Mapping[str, Union[str, bytes]], Sequence[FileSpec]]] = None,
               timeout: Optional[int] = None,
               cpu_timeout: Optional[int] = None, memory_limit: Optional[int] = None,
               max_output: Optional[int] = None, policy: Optional[str] = None,
               exercise_id: Optional[Union[str, int]] = None, user_id: Optional[str] = None,
               run_tests: bool = False, test_code: Optional[str] = None, module_name: Optional[str] = None,
               request_id: Optional[str] = None) -> Iterator[StreamEvent]:
        """Run a program with its output streamed (Server-Sent Events):
        yields a StreamEvent for each piece of stdout or stderr as the service
        sends it, and last the `result` event. Takes execute()'s arguments
        but tests (graded requests are not streamed). The request is sent
        at the first next(), where a refusal raises ApiError; closing the
        iterator early closes the connection, which stops the run."""
        req = ExecuteRequest(code, stdin, args, files, timeout, cpu_timeout, memory_limit, max_output, policy,
                             exercise_id, user_id, run_tests, test_code, module_name)
        return self.stream_request(req, request_id=request_id)

    def stream_request(self, request: RequestLike, *, request_id: Optional[str] = None) -> Iterator[StreamEvent]:
        body = _request_json(request)
        headers = {"Accept": "text/event-stream"}
        if request_id:
            headers["X-Request-Id"] = request_id
        conn, resp = self._open("POST", "/api/execute", body, headers, self._run_timeout(body))
        try:
            ctype = resp.getheader("Content-Type", "") or ""
            if not ctype.startswith("text/event-stream"):
                data = resp.read()
                try:
                    doc = json.loads(data)
                except ValueError:
                    doc = None
                # Answered without streaming (a proxy dropped the Accept
                # header, say): the result document as the only event.
                if resp.status in (200, 500) and isinstance(doc, dict) and "status" in doc and "error" not in doc:
                    yield StreamEvent("result", result=Result.from_json(doc))
                    return
                raise error_from_response(resp.status, dict(resp.getheaders()),
                                          doc if isinstance(doc, dict) else None, data.decode(errors="replace"))
            parser = SSEParser()
            while True:
                try:
                    chunk = resp.read1(65536)
                except (OSError, http.client.HTTPException) as e:
                    raise TransportError(f"the event stream broke: {e or type(e).__name__}") from e
                events = parser.feed(chunk) if chunk else parser.close()
                for ev in events:
                    doc = json.loads(ev.data)
                    if ev.event == "result":
                        yield StreamEvent("result", result=Result.from_json(doc))
                        return
                    yield StreamEvent(ev.event, text=doc if isinstance(doc, str) else json.dumps(doc))
                if not chunk:
                    raise TransportError("the event stream ended without a result")
        finally:
            conn.close()

    def execute_stream(self, code: str, *, on_stdout: Optional[OutputCallback] = None,
                       on_stderr: Optional[OutputCallback] = None, stdin: Optional[Union[str, bytes]] = None,
                       args: Optional[Sequence[str]] = None,
                       files: Optional[Union[Mapping[str, Union[str, bytes]], Sequence[FileSpec]]] = None,
                       timeout: Optional[int] = None, cpu_timeout: Optional[int] = None,
                       memory_limit: Optional[int] = None, max_output: Optional[int] = None,
                       policy: Optional[str] = None, exercise_id: Optional[Union[str, int]] = None,
                       user_id: Optional[str] = None, run_tests: bool = False, test_code: Optional[str] = None,
                       module_name: Optional[str] = None, request_id: Optional[str] = None) -> Result:
        """Run a program with live output: on_stdout and on_stderr are called
        with each piece of text as it arrives; returns the result."""
        req = ExecuteRequest(code, stdin, args, files, timeout, cpu_timeout, memory_limit, max_output, policy,
                             exercise_id, user_id, run_tests, test_code, module_name)
        for ev in self.stream_request(req, request_id=request_id):
            if ev.result is not None:
                return ev.result
            cb = on_stdout if ev.event == "stdout" else on_stderr if ev.event == "stderr" else None
            if cb is not None:
                cb(ev.text)
        raise TransportError("the event stream ended without a result")

    # -- service -----------------------------------------------------------

    def health(self) -> Health:
        """GET /health."""
        d = self._call("GET", "/health").json()
        return Health(str(d.get("status", "")), str(d.get("version", "")), float(d.get("uptimeSeconds", 0)),
                      d.get("ready") is True, d.get("reason"), d)

    def live(self) -> bool:
        """GET /health/live: whether the process answers."""
        try:
            return self._send("GET", "/health/live", None, None, self.timeout).status == 200
        except TransportError:
            return False

    def ready(self) -> Readiness:
        """GET /health/ready, without retrying: ready, or the reason and
        Retry-After of a 503."""
        a = self._send("GET", "/health/ready", None, None, self.timeout)
        if a.status == 200:
            return Readiness(True)
        if a.status != 503:
            raise error_from_response(a.status, a.headers, None, a.body.decode(errors="replace"))
        doc = a.json()
        err = error_from_response(a.status, a.headers, None)
        return Readiness(False, doc.get("reason") if isinstance(doc, dict) else None, err.retry_after)

    def environment(self) -> JsonObject:
        """GET /api/environment: the service's start-up self-test report
        (`pyexec check --json`)."""
        d = self._call("GET", "/api/environment", timeout=self.timeout).json()
        return d if isinstance(d, dict) else {}

    def stats(self) -> JsonObject:
        """GET /api/stats."""
        d = self._call("GET", "/api/stats").json()
        return d if isinstance(d, dict) else {}


class Submissions:
    """Asynchronous submissions: POST /api/submissions and GET /api/submissions."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def _post(self, body: JsonObject, idempotency_key: Optional[str], wait: Optional[int]) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        path = "/api/submissions" + (f"?wait={int(wait)}" if wait is not None else "")
        timeout = max(self._c.timeout, (wait or 0) / 1000 + 30)
        return self._c._call("POST", path, body, headers=headers, timeout=timeout, ok=(200, 202)).json()

    def create(self, request: RequestLike, *, callback_url: Optional[str] = None,
               idempotency_key: Optional[str] = None, wait: Optional[int] = None) -> Submission:
        """Queue one request (an ExecuteRequest or a dict of API fields).
        wait (ms) keeps the connection until it is done or the time is up.
        With idempotency_key, sending it again returns the same submission
        (and the call is retried on 429/503)."""
        body = _request_json(request)
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        return Submission.from_json(self._post(body, idempotency_key, wait))

    def create_batch(self, requests: Sequence[RequestLike], *, callback_url: Optional[str] = None,
                     idempotency_key: Optional[str] = None, wait: Optional[int] = None) -> List[Submission]:
        """Queue several requests at once (all or none), in order."""
        body: JsonObject = {"submissions": [_request_json(r) for r in requests]}
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        doc = self._post(body, idempotency_key, wait)
        return [Submission.from_json(s) for s in doc.get("submissions", [])]

    def get(self, submission_id: str) -> Submission:
        """GET /api/submissions/{id}; NotFoundError when unknown or expired."""
        return Submission.from_json(self._c._call("GET", "/api/submissions/" + urllib.parse.quote(submission_id,
                                                                                                    safe="")).json())

    def get_many(self, ids: Sequence[str]) -> List[Submission]:
        """GET /api/submissions?ids=...: in order; an unknown id has state `unknown`."""
        q = urllib.parse.urlencode({"ids": ",".join(ids)}, safe=",")
        doc = self._c._call("GET", "/api/submissions?" + q).json()
        return [Submission.from_json(s) for s in doc.get("submissions", [])]

    def wait(self, submission_id: str, *, timeout: float = 300.0, on_progress: Optional[ProgressCallback] = None,
             poll_interval: float = 0.2, max_interval: float = 2.0) -> Submission:
        """Poll until the submission is done (backing off from poll_interval
        to max_interval seconds); on_progress sees each state read before.
        Raises WaitTimeout after timeout seconds."""
        return self.wait_many([submission_id], timeout=timeout, on_progress=on_progress,
                              poll_interval=poll_interval, max_interval=max_interval)[0]

    def wait_many(self, ids: Sequence[str], *, timeout: float = 300.0,
                  on_progress: Optional[ProgressCallback] = None, poll_interval: float = 0.2,
                  max_interval: float = 2.0) -> List[Submission]:
        """wait() for several: returns them in order once all are done."""
        deadline = time.monotonic() + timeout
        interval = poll_interval
        done: Dict[str, Submission] = {}
        while True:
            pending = [i for i in ids if i not in done]
            for s in self._get_any(pending):
                if s.done:
                    done[s.id] = s
                elif s.state == "unknown":
                    raise PyexecError(f"submission {s.id} is unknown (expired, or never created)")
                elif on_progress is not None:
                    on_progress(s)
            if len(done) == len(set(ids)):
                return [done[i] for i in ids]
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{len(ids) - len(done)} of {len(ids)} submissions not done within {timeout} s")
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, max_interval)

    def _get_any(self, ids: Sequence[str]) -> List[Submission]:
        if len(ids) == 1:
            return [self.get(ids[0])]
        out: List[Submission] = []
        for i in range(0, len(ids), 100):
            out += self.get_many(ids[i:i + 100])
        return out


class Jobs:
    """Operator jobs: GET /api/jobs and POST /api/jobs/{name}."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self) -> List[Job]:
        doc = self._c._call("GET", "/api/jobs").json()
        return [Job.from_json(j) for j in doc.get("jobs", [])]

    def run(self, name: str, params: Mapping[str, Union[str, int, float, bool]], *,
            http_timeout: float = 660.0) -> Result:
        """Run a job and wait for its result (`job`, `outputs`). A job may
        take minutes (a render up to 10): http_timeout is the longest wait
        for the answer. Refused parameters raise BadRequestError with
        `field` "params.NAME"."""
        a = self._c._call("POST", "/api/jobs/" + urllib.parse.quote(name, safe=""), {"params": dict(params)},
                          timeout=max(self._c.timeout, http_timeout))
        return Result.from_json(a.json())

    def submit(self, name: str, params: Mapping[str, Union[str, int, float, bool]], *,
               callback_url: Optional[str] = None, idempotency_key: Optional[str] = None) -> Submission:
        """Queue a job (`"async": true`): returns its submission at once."""
        body: JsonObject = {"params": dict(params), "async": True}
        if callback_url is not None:
            body["callbackUrl"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        doc = self._c._call("POST", "/api/jobs/" + urllib.parse.quote(name, safe=""), body, headers=headers,
                            ok=(200, 202)).json()
        return Submission.from_json(doc)

    def run_async(self, name: str, params: Mapping[str, Union[str, int, float, bool]], *,
                  on_progress: Optional[Callable[[float], None]] = None, timeout: float = 900.0) -> Submission:
        """Queue a job and poll until it is done; on_progress gets each new
        progress fraction the job reports. Returns the done submission
        (its `result`, or the `error` a worker answered)."""
        sub = self.submit(name, params)
        last: List[Optional[float]] = [None]

        def progress(s: Submission) -> None:
            if on_progress is not None and s.progress is not None and s.progress != last[0]:
                last[0] = s.progress
                on_progress(s.progress)

        return self._c.submissions.wait(sub.id, timeout=timeout, on_progress=progress)


__all__ = ["Client", "Submissions", "Jobs", "DEFAULT_URL"]
