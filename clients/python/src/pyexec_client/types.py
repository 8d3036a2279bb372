"""Typed views of the service's JSON: requests, results, submissions, jobs.

Every parsed object keeps the document it came from in `raw`, so a field
the service adds later is never lost.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

JsonObject = Dict[str, Any]


def _int_or_none(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str_or_none(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCase:
    """One graded case of `tests`: the program's stdout must equal
    `expected_output` (trailing whitespace of each line and trailing newlines
    ignored)."""

    __test__ = False  # not a pytest class

    expected_output: str
    stdin: Optional[str] = None
    name: Optional[str] = None
    args: Optional[Sequence[str]] = None

    def to_json(self) -> JsonObject:
        d: JsonObject = {"expectedOutput": self.expected_output}
        if self.name is not None:
            d["name"] = self.name
        if isinstance(self.stdin, bytes):
            d["stdinBase64"] = base64.b64encode(self.stdin).decode("ascii")
        elif self.stdin is not None:
            d["stdin"] = self.stdin
        if self.args is not None:
            d["args"] = list(self.args)
        return d


FileSpec = Union[Mapping[str, Union[str, bytes]], Sequence[Union[str, bytes]]]
"""A file of `files`: {"name": ..., "content": ...}, or a (name, content) pair;
content as bytes goes in base64 (contentBase64)."""

TestSpec = Union[TestCase, Mapping[str, Any]]


@dataclass(frozen=True)
class ExecuteRequest:
    """The body of POST /api/execute (and of each submission). Times are
    milliseconds and memory megabytes, as the API has them; None leaves a
    field to the service's default."""

    code: str
    stdin: Optional[Union[str, bytes]] = None
    args: Optional[Sequence[str]] = None
    files: Optional[Union[Mapping[str, Union[str, bytes]], Sequence[FileSpec]]] = None
    timeout: Optional[int] = None
    cpu_timeout: Optional[int] = None
    memory_limit: Optional[int] = None
    max_output: Optional[int] = None
    policy: Optional[str] = None
    exercise_id: Optional[Union[str, int]] = None
    user_id: Optional[str] = None
    run_tests: bool = False
    test_code: Optional[str] = None
    module_name: Optional[str] = None
    tests: Optional[Sequence[TestSpec]] = None
    total_timeout: Optional[int] = None

    def to_json(self) -> JsonObject:
        d: JsonObject = {"code": self.code}
        if isinstance(self.stdin, bytes):
            d["stdinBase64"] = base64.b64encode(self.stdin).decode("ascii")
        elif self.stdin is not None:
            d["stdin"] = self.stdin
        if self.args is not None:
            d["args"] = list(self.args)
        if self.files is not None:
            d["files"] = _files_json(self.files)
        for key, value in (("timeout", self.timeout), ("cpuTimeout", self.cpu_timeout),
                           ("memoryLimit", self.memory_limit), ("maxOutput", self.max_output),
                           ("policy", self.policy), ("exerciseId", self.exercise_id), ("userId", self.user_id)):
            if value is not None:
                d[key] = value
        if self.run_tests:
            d["runTests"] = True
        if self.test_code is not None:
            d["testCode"] = self.test_code
        if self.module_name is not None:
            d["moduleName"] = self.module_name
        if self.tests is not None:
            d["tests"] = [t.to_json() if isinstance(t, TestCase) else dict(t) for t in self.tests]
        if self.total_timeout is not None:
            d["totalTimeout"] = self.total_timeout
        return d


def _file_json(name: Union[str, bytes], content: Union[str, bytes]) -> JsonObject:
    if isinstance(content, bytes):
        return {"name": name, "contentBase64": base64.b64encode(content).decode("ascii")}
    return {"name": name, "content": content}


def _files_json(files: Union[Mapping[str, Union[str, bytes]], Sequence[FileSpec]]) -> List[JsonObject]:
    if isinstance(files, Mapping):
        return [_file_json(n, c) for n, c in files.items()]
    out: List[JsonObject] = []
    for f in files:
        if isinstance(f, Mapping):
            out.append(_file_json(f["name"], f["content"]))
        else:
            name, content = f
            out.append(_file_json(name, content))
    return out


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Time:
    wall_ms: float
    cpu_ms: float


@dataclass(frozen=True)
class Limits:
    timeout_ms: int
    cpu_time_ms: int
    memory_mb: int
    max_output: int
    pids: int
    disk_mb: int
    file_size_mb: int
    open_files: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Limits":
        return cls(*(int(d.get(k) or 0) for k in ("timeoutMs", "cpuTimeMs", "memoryMb", "maxOutput", "pids",
                                                  "diskMb", "fileSizeMb", "openFiles")))


@dataclass(frozen=True)
class Difference:
    """The first line where a failed case's normalized output differs;
    None for the side that has no such line."""

    line: int
    expected: Optional[str]
    actual: Optional[str]


@dataclass(frozen=True)
class CaseResult:
    """One case of a graded request's `tests`."""

    name: str
    status: str  # passed, failed, not_run, or the run's own status
    stdout: str
    expected_output: str
    time_ms: float
    message: Optional[str] = None
    difference: Optional[Difference] = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CaseResult":
        diff = d.get("difference")
        return cls(name=str(d.get("name", "")), status=str(d.get("status", "")), stdout=str(d.get("stdout", "")),
                   expected_output=str(d.get("expectedOutput", "")), time_ms=_num(d.get("timeMs")),
                   message=_str_or_none(d.get("message")),
                   difference=Difference(int(diff.get("line", 0)), _str_or_none(diff.get("expected")),
                                         _str_or_none(diff.get("actual"))) if isinstance(diff, dict) else None)


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int
    total: int
    not_run: int = 0


@dataclass(frozen=True)
class Image:
    """An image the program produced (such as a matplotlib figure), as the
    result's `images` carries it: `data` is base64."""

    format: str
    width: int
    height: int
    data: str

    def bytes(self) -> bytes:
        return base64.b64decode(self.data)


@dataclass(frozen=True)
class JobOutput:
    """A file a job published: its host path, size and SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Result:
    """The result of a run: POST /api/execute, a job, a submission's result.
    `verdict`, `tests` and `summary` are there for graded requests, `job`
    and `outputs` for jobs; `images` (with `images_truncated`) when the
    service reports the pictures the program showed, else None."""

    id: str
    status: str
    exit_code: Optional[int]
    signal: Optional[str]
    stdout: str
    stderr: str
    output: str
    truncated: bool
    message: Optional[str]
    time: Time
    memory_peak_kb: int
    limits: Limits
    exercise_id: Optional[Union[str, int]] = None
    verdict: Optional[str] = None
    tests: Optional[List[CaseResult]] = None
    summary: Optional[Summary] = None
    images: Optional[List[Image]] = None
    images_truncated: Optional[bool] = None
    job: Optional[str] = None
    outputs: Optional[List[JobOutput]] = None
    raw: JsonObject = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The program exited with 0."""
        return self.status == "ok"

    @property
    def accepted(self) -> bool:
        """A graded request's verdict is `accepted`."""
        return self.verdict == "accepted"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Result":
        t = d.get("time") or {}
        m = d.get("memory") or {}
        s = d.get("summary")
        tests = d.get("tests")
        images = d.get("images")
        outputs = d.get("outputs")
        ex = d.get("exerciseId")
        return cls(
            id=str(d.get("id", "")),
            status=str(d.get("status", "")),
            exit_code=_int_or_none(d.get("exitCode")),
            signal=_str_or_none(d.get("signal")),
            stdout=str(d.get("stdout", "")),
            stderr=str(d.get("stderr", "")),
            output=str(d.get("output", "")),
            truncated=d.get("truncated") is True,
            message=_str_or_none(d.get("message")),
            time=Time(_num(t.get("wallMs")), _num(t.get("cpuMs"))),
            memory_peak_kb=int(m.get("peakKb") or 0),
            limits=Limits.from_json(d.get("limits") or {}),
            exercise_id=ex if isinstance(ex, (str, int)) and not isinstance(ex, bool) else None,
            verdict=_str_or_none(d.get("verdict")),
            tests=[CaseResult.from_json(c) for c in tests] if isinstance(tests, list) else None,
            summary=Summary(int(s.get("passed", 0)), int(s.get("failed", 0)), int(s.get("total", 0)),
                            int(s.get("notRun", 0))) if isinstance(s, dict) else None,
            images=[Image(str(i.get("format", "")), int(i.get("width", 0)), int(i.get("height", 0)),
                          str(i.get("data", ""))) for i in images] if isinstance(images, list) else None,
            images_truncated=d["imagesTruncated"] if isinstance(d.get("imagesTruncated"), bool) else None,
            job=_str_or_none(d.get("job")),
            outputs=[JobOutput(str(o.get("path", "")), int(o.get("bytes", 0)), str(o.get("sha256", "")))
                     for o in outputs] if isinstance(outputs, list) else None,
            raw=dict(d),
        )


# ---------------------------------------------------------------------------
# Streaming, submissions, jobs, health
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamEvent:
    """One event of a streamed execution: `stdout` and `stderr` carry text
    (`text`), the last, `result`, the result (`result`)."""

    event: str
    text: str = ""
    result: Optional[Result] = None


@dataclass(frozen=True)
class ErrorInfo:
    """The error a worker answered for a submission it refused."""

    code: str
    message: str
    field: Optional[str] = None


@dataclass(frozen=True)
class Submission:
    """A submission's state: `queued`, `running`, `done` (or `unknown` in a
    GET of several ids). Once done, `http_status` and either `result` or
    `error`."""

    id: str
    state: str
    progress: Optional[float] = None
    http_status: Optional[int] = None
    result: Optional[Result] = None
    error: Optional[ErrorInfo] = None
    raw: JsonObject = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state == "done"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Submission":
        res = d.get("result")
        result: Optional[Result] = None
        error: Optional[ErrorInfo] = None
        if isinstance(res, dict):
            e = res.get("error")
            if isinstance(e, dict) and len(res) == 1:
                error = ErrorInfo(str(e.get("code", "")), str(e.get("message", "")), _str_or_none(e.get("field")))
            else:
                result = Result.from_json(res)
        p = d.get("progress")
        return cls(id=str(d.get("id", "")), state=str(d.get("state", "")),
                   progress=float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None,
                   http_status=_int_or_none(d.get("httpStatus")), result=result, error=error, raw=dict(d))


@dataclass(frozen=True)
class Job:
    """An operator job of GET /api/jobs."""

    name: str
    description: Optional[str]
    params: Dict[str, JsonObject]
    ready: bool
    problems: List[str]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Job":
        r = d.get("readiness") or {}
        return cls(name=str(d.get("name", "")), description=_str_or_none(d.get("description")),
                   params=dict(d.get("params") or {}), ready=r.get("ready") is True,
                   problems=[str(p) for p in r.get("problems") or []])


@dataclass(frozen=True)
class Health:
    """GET /health: `status` is `ok` or `degraded` (with `reason`)."""

    status: str
    version: str
    uptime_seconds: float
    ready: bool
    reason: Optional[str] = None
    raw: JsonObject = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Readiness:
    """GET /health/ready: ready, or why not and when to ask again."""

    ready: bool
    reason: Optional[str] = None
    retry_after: Optional[int] = None
