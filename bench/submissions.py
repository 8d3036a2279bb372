#!/usr/bin/python3
"""Asynchronous submissions against the synchronous path, in one run.

    bench/submissions.py [BUILD/pyexec]   (as root, like the other benchmarks)

Starts its own redis-server (appendonly, fsync every second) on loopback
and prints:
  - throughput: N hello-world submissions in batches of 100 through Redis,
    run by 1 and then 2 `pyexec worker` processes (each with the service's
    default slots), from the first POST until the last result is stored,
    against N POST /api/execute at concurrency 8 on one `pyexec serve`;
  - latency: p50/p95 of a hello world at 20 requests/s through
    POST /api/execute, POST /api/submissions?wait= on the in-process queue,
    and the same through Redis and one worker: the queue's added latency;
  - callbacks: how long after the answer of ?wait= the callback arrives.
Knobs: BENCH_N (1000), BENCH_PACED (200).
"""
import base64
import http.client
import http.server
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PYEXEC = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "build/pyexec")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
N = int(os.environ.get("BENCH_N", "1000"))
PACED = int(os.environ.get("BENCH_PACED", "200"))
HELLO = {"code": "print('hello')"}
SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-12").decode()
tmp = tempfile.mkdtemp(prefix="pyexec-bench-subs-")
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, what, path="/health/ready"):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} not ready")


def start(cmd, env, name):
    port = free_port()
    environ = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "RATE_LIMIT_MAX": "0", "LOG_LEVEL": "warn",
               "DEFAULT_POLICY": "permissive", "MAX_BATCH": "100", **env}
    log = open(os.path.join(tmp, f"{name}-{port}.log"), "wb")
    p = subprocess.Popen([PYEXEC, cmd, "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         env=environ)
    procs.append(p)
    wait_ready(port, p, name)
    return p, port


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    procs.remove(p)


def post(c, path, body, headers=None):
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    return r.status, json.loads(r.read())


def get(c, path):
    c.request("GET", path)
    r = c.getresponse()
    return r.status, json.loads(r.read())


def async_throughput(port, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.monotonic()
    ids = []
    for i in range(0, n, 100):
        st, doc = post(c, "/api/submissions", {"submissions": [HELLO] * min(100, n - i)})
        assert st == 202, doc
        ids += [s["id"] for s in doc["submissions"]]
    pending = list(ids)
    while pending:
        st, doc = get(c, "/api/submissions?ids=" + ",".join(pending[:100]))
        assert st == 200, doc
        done = {s["id"] for s in doc["submissions"] if s["state"] == "done"}
        assert all(s["result"]["status"] == "ok" for s in doc["submissions"] if s["id"] in done)
        pending = [i for i in pending if i not in done]
        if pending:
            time.sleep(0.01)
    return n / (time.monotonic() - t0)


def sync_throughput(port, n, conc=8):
    left = [n]
    lock = threading.Lock()

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            st, doc = post(c, "/api/execute", HELLO)
            assert st == 200 and doc["status"] == "ok", doc

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n / (time.monotonic() - t0)


def paced(port, path, n, rate=20.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat = []
    for i in range(n):
        t = time.monotonic()
        st, doc = post(c, path, HELLO)
        lat.append((time.monotonic() - t) * 1e3)
        assert st == 200, doc
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t)))
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.95)]


class Receiver(http.server.ThreadingHTTPServer):
    arrivals = {}


class Hook(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.arrivals[json.loads(body)["data"]["id"]] = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    virt = "hypervisor" in open("/proc/cpuinfo").read()
    return f"{model}, {os.cpu_count()} CPUs, kernel {platform.release()}{', virtualized' if virt else ''}"


def main():
    rport = free_port()
    rdir = os.path.join(tmp, "redis")
    os.mkdir(rdir)
    redis = subprocess.Popen([REDIS, "--port", str(rport), "--bind", "127.0.0.1", "--dir", rdir, "--save", "",
                              "--appendonly", "yes", "--appendfsync", "everysec"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    procs.append(redis)
    url = f"redis://127.0.0.1:{rport}"
    time.sleep(0.5)
    print(f"machine: {machine()}")
    print(f"redis-server {subprocess.run([REDIS, '--version'], capture_output=True, text=True).stdout.split()[2]}")

    sync, sport = start("serve", {}, "sync")
    print(f"synchronous: {sync_throughput(sport, N):.1f} runs/s (POST /api/execute, concurrency 8, {N} runs)")
    p50, p95 = paced(sport, "/api/execute", PACED)
    print(f"  latency at 20/s: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
    m50, m95 = paced(sport, "/api/submissions?wait=10000", PACED)
    print(f"in-process queue, ?wait=: p50 {m50:.2f} ms (+{m50 - p50:.2f}), p95 {m95:.2f} ms")
    stop(sync)

    hooks = {"CALLBACK_ALLOWED_HOSTS": "127.0.0.1", "WEBHOOK_SECRET": SECRET}
    front, fport = start("serve", {"QUEUE_URL": url, "QUEUE_WORKERS": "0", **hooks}, "front")
    workers = []
    for k in (1, 2):
        workers.append(start("worker", {"QUEUE_URL": url, **hooks}, f"worker{k}"))
        rate = async_throughput(fport, N)
        print(f"through Redis, {k} worker{'s' if k > 1 else ''}: {rate:.1f} submissions/s ({N}, batches of 100)")
    stop(workers[1][0])
    r50, r95 = paced(fport, "/api/submissions?wait=10000", PACED)
    print(f"through Redis, 1 worker, ?wait=: p50 {r50:.2f} ms (+{r50 - p50:.2f} over synchronous), p95 {r95:.2f} ms")

    rec = Receiver(("127.0.0.1", 0), Hook)
    threading.Thread(target=rec.serve_forever, daemon=True).start()
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=60)
    answered = {}
    for i in range(50):
        st, doc = post(c, "/api/submissions?wait=10000",
                       {**HELLO, "callbackUrl": f"http://127.0.0.1:{rec.server_address[1]}/"})
        answered[doc["id"]] = time.monotonic()
        time.sleep(0.05)
    time.sleep(2)
    delays = sorted((rec.arrivals[i] - t) * 1e3 for i, t in answered.items() if i in rec.arrivals)
    print(f"callbacks: {len(delays)} of {len(answered)} arrived; after the ?wait= answer: "
          f"p50 {statistics.median(delays):.2f} ms, max {delays[-1]:.2f} ms")
    rec.shutdown()
    stop(workers[0][0])
    stop(front)


try:
    main()
finally:
    for p in procs:
        p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
