"""A client of the pyexec HTTP service: run Python programs in pyexec's
sandbox, grade them, stream their output, queue submissions, run operator
jobs and verify callbacks. Standard library only.

    from pyexec_client import Client
    client = Client("http://127.0.0.1:3002", api_key="...")
    result = client.execute("print(input()[::-1])", stdin="olleh")
    assert result.stdout == "hello\\n"
"""
from ._version import __version__
from .client import DEFAULT_URL, Client, Jobs, Submissions
from .compat import EnvironmentStatus, PythonExecutor
from .errors import (ApiError, AuthenticationError, BadRequestError, ConflictError, NotFoundError,
                     PayloadTooLargeError, PyexecError, RateLimitError, ServiceUnavailableError, TransportError,
                     WaitTimeout, WebhookVerificationError)
from .sse import Event, SSEParser
from .types import (CaseResult, Difference, ErrorInfo, ExecuteRequest, Health, Image, Job, JobOutput, Limits,
                    Readiness, Result, StreamEvent, Submission, Summary, TestCase, Time)
from .webhook import verify_webhook

__all__ = [
    "__version__", "DEFAULT_URL", "Client", "Jobs", "Submissions", "PythonExecutor", "EnvironmentStatus",
    "ApiError", "AuthenticationError", "BadRequestError", "ConflictError", "NotFoundError", "PayloadTooLargeError",
    "PyexecError", "RateLimitError", "ServiceUnavailableError", "TransportError", "WaitTimeout",
    "WebhookVerificationError", "Event", "SSEParser", "CaseResult", "Difference", "ErrorInfo", "ExecuteRequest",
    "Health", "Image", "Job", "JobOutput", "Limits", "Readiness", "Result", "StreamEvent", "Submission", "Summary",
    "TestCase", "Time", "verify_webhook",
]
