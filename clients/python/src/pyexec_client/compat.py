"""PythonExecutor: the interface of the original executor package, on the
pyexec service, so code written for it moves over by changing its import.

    executor = PythonExecutor(timeout=5000, memory_limit=128)
    result = executor.execute({"code": "print(1)", "stdin": ""})
    result["output"], result["status"], result["stdout"], ...

Requests and results are dicts with the service's field names (camelCase,
the original service's), so existing code that builds and reads them keeps
working. The jobs helpers call the operator jobs `compose` and `render`.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple, TypedDict

from .client import DEFAULT_URL, Client
from .errors import ApiError, PyexecError


class EnvironmentStatus(TypedDict):
    """What validate_python_environment() found."""

    valid: bool
    problems: List[str]
    jobs: Dict[str, bool]


class PythonExecutor:
    """timeout (ms) and memory_limit (MB) are the defaults of each request
    that does not give its own `timeout` or `memoryLimit`. enable_sandbox is
    accepted for compatibility: pyexec always runs programs in its kernel
    sandbox, which cannot be turned off from a client. base_url defaults to
    $PYEXEC_URL, else http://127.0.0.1:3002; api_key to $PYEXEC_API_KEY."""

    def __init__(self, timeout: Optional[int] = None, memory_limit: Optional[int] = None,
                 enable_sandbox: bool = True, base_url: Optional[str] = None, api_key: Optional[str] = None,
                 client: Optional[Client] = None) -> None:
        if not enable_sandbox:
            warnings.warn("enable_sandbox=False has no effect: pyexec always runs programs in its sandbox",
                          stacklevel=2)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.enable_sandbox = True
        self.client = client or Client(base_url or os.environ.get("PYEXEC_URL") or DEFAULT_URL,
                                       api_key if api_key is not None else os.environ.get("PYEXEC_API_KEY"))

    def execute(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        """POST /api/execute with request (the API's fields: code, stdin,
        files, args, tests, runTests, testCode, timeout, memoryLimit, ...);
        returns the result document (output, stdout, stderr, status,
        exitCode, time, memory, ...). A refusal raises ApiError."""
        body = dict(request)
        if self.timeout is not None:
            body.setdefault("timeout", self.timeout)
        if self.memory_limit is not None:
            body.setdefault("memoryLimit", self.memory_limit)
        return dict(self.client.execute_request(body).raw)

    def execute_compose(self, template_path: str, design_path: str, preset: str,
                        output_path: str) -> Tuple[bool, Optional[str], Optional[str]]:
        """The `compose` job: (success, output_path, error)."""
        try:
            r = self.client.jobs.run("compose", {"template": template_path, "design": design_path,
                                                 "preset": preset, "output": output_path})
        except PyexecError as e:
            return False, None, _describe(e)
        if not r.ok:
            return False, None, r.message or r.status
        path = r.outputs[0].path if r.outputs else output_path
        return True, path, None

    def execute_render(self, blend_file: str, texture_path: str, output_dir: str, samples: int = 128,
                       skip_animation: bool = False) -> Tuple[bool, Optional[str], Optional[str], Optional[str]]:
        """The `render` job: (success, render_path, animation_path, error);
        animation_path is None with skip_animation."""
        try:
            r = self.client.jobs.run("render", {"blend": blend_file, "texture": texture_path, "outdir": output_dir,
                                                "samples": samples, "no_animation": skip_animation})
        except PyexecError as e:
            return False, None, None, _describe(e)
        if not r.ok:
            return False, None, None, r.message or r.status
        # The job names its outputs after the design ({design}_render.png,
        # {design}_animation.mp4) and gives their paths.
        still, anim = r.raw.get("renderPath"), r.raw.get("animationPath")
        return True, still if isinstance(still, str) else None, anim if isinstance(anim, str) else None, None

    def validate_python_environment(self) -> EnvironmentStatus:
        """Whether the service is ready to run programs, and each of its jobs
        (compose, render, ...) is ready; problems says what is not."""
        problems: List[str] = []
        jobs: Dict[str, bool] = {}
        try:
            rd = self.client.ready()
            if not rd.ready:
                problems.append(f"service not ready: {rd.reason}")
            for j in self.client.jobs.list():
                jobs[j.name] = j.ready
                problems += [f"job {j.name}: {p}" for p in j.problems]
        except PyexecError as e:
            problems.append(_describe(e))
        for name in ("compose", "render"):
            if name not in jobs:
                problems.append(f"job {name}: not offered by the service")
        return {"valid": not problems, "problems": problems, "jobs": jobs}


def _describe(e: PyexecError) -> str:
    if isinstance(e, ApiError):
        return f"{e.code}: {e.message}" + (f" ({e.field})" if e.field else "")
    return str(e)


__all__ = ["PythonExecutor", "EnvironmentStatus"]
