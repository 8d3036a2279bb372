#!/usr/bin/python3
"""Latency at a fixed request rate (open loop): paced.py PORT RATE N [PATH [POLICY]].

Sends N+20 requests on one keep-alive connection, one every 1/RATE
seconds, and prints the p50, p90 and p99 of the last N in milliseconds as
JSON. Each latency counts from the request's scheduled time, so a slow
answer that delays the next request is charged to it (no coordinated
omission). PATH is /api/execute (a POST of print(1), which must answer
200 "ok"; with POLICY, the request names that policy) or /health/live (a GET: the round trip of the client and the
HTTP server alone). A raw socket, not http.client: the client's own cost
stays small against what it measures.
"""
import json
import re
import socket
import sys
import time

port, rate, n = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
path = sys.argv[4] if len(sys.argv) > 4 else "/api/execute"
if path == "/api/execute":
    fields = {"code": "print(1)"}
    if len(sys.argv) > 5:
        fields["policy"] = sys.argv[5]
    body = json.dumps(fields).encode()
    req = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
else:
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def roundtrip():
    sock.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("paced.py: the server closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        rest += sock.recv(65536)
    if int(head.split()[1]) != 200 or (path == "/api/execute" and json.loads(rest)["status"] != "ok"):
        raise SystemExit(f"paced.py: unexpected answer: {head[:60]!r} {rest[:200]!r}")


lat = []
interval = 1 / rate
t_next = time.perf_counter()
for i in range(n + 20):
    now = time.perf_counter()
    if now < t_next:
        time.sleep(t_next - now)
    roundtrip()
    if i >= 20:  # the first ones warm up
        lat.append((time.perf_counter() - t_next) * 1e3)
    t_next += interval
lat.sort()
print(json.dumps({p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] for p in (50, 90, 99)}))
