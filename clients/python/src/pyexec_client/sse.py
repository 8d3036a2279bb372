"""An incremental parser of Server-Sent Events (the HTML standard's
"event stream interpretation"): bytes go in as they arrive, complete events
come out as soon as their terminating blank line has been read."""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import List, Optional


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the stream named none
    data: str
    id: Optional[str] = None
    retry: Optional[int] = None


class SSEParser:
    """feed(chunk) -> the events completed by chunk; lines may end with
    "\\n", "\\r\\n" or "\\r", and a chunk may end anywhere (inside a line, a
    CRLF pair or a UTF-8 character)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._first = True
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None
        self._last_id: Optional[str] = None
        self._retry: Optional[int] = None

    def feed(self, chunk: bytes) -> List[Event]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            text = text.removeprefix("\ufeff")
            self._first = False
        self._buf += text
        out: List[Event] = []
        while True:
            i = _line_end(self._buf)
            if i < 0:
                break
            line = self._buf[:i]
            # "\r" at the very end may be the first half of "\r\n": wait.
            if self._buf[i] == "\r":
                if i + 1 == len(self._buf):
                    break
                step = 2 if self._buf[i + 1] == "\n" else 1
            else:
                step = 1
            self._buf = self._buf[i + step:]
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        return out

    def close(self) -> List[Event]:
        """At the end of the stream: an unterminated event is discarded, as
        the standard says; a pending "\\r" ends its line."""
        out: List[Event] = []
        if self._buf.endswith("\r"):
            ev = self._line(self._buf[:-1])
            self._buf = ""
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> Optional[Event]:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> Optional[Event]:
        data, name = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(name or "message", "\n".join(data), self._last_id, self._retry)


def _line_end(s: str) -> int:
    a, b = s.find("\n"), s.find("\r")
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)
