#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A webhook receiver for tests/unit/test-webhook.c, on 127.0.0.1.

    webhook-receiver.py MODE SECRET DIR

Listens on a free port and writes it to DIR/port once it accepts. Every
request it gets is one line of DIR/log, written as it arrives (before it
answers): "METHOD PATH WEBHOOK-ID SIG", SIG being "sig-ok" when the
webhook-signature header verifies with SECRET (Standard Webhooks, checked
here with the standard library alone) and "sig-bad" otherwise.

MODE says how it answers:
    flaky     500 to the first request, 200 to the others
    ok        200
    redirect  302 to /elsewhere (which answers 200)
    hang      never answers (holds the connection for a minute)
"""
import base64
import hashlib
import hmac
import http.server
import os
import sys
import threading
import time

mode, secret, out = sys.argv[1], sys.argv[2], sys.argv[3]
key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
lock = threading.Lock()
count = 0


def verify(headers, body):
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    sig = headers.get("webhook-signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(want, s) for s in sig.split(" "))


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify(self.headers, body)
        with lock:
            count += 1
            n = count
            with open(os.path.join(out, "log"), "a") as f:
                f.write(f"POST {self.path} {self.headers.get('webhook-id', '-')} {'sig-ok' if ok else 'sig-bad'}\n")
        if mode == "hang":
            time.sleep(60)
        elif mode == "redirect" and self.path != "/elsewhere":
            self.answer(302, [("Location", "/elsewhere")])
        elif mode == "flaky" and n == 1:
            self.answer(500)
        else:
            self.answer(200)

    do_GET = do_POST


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
server.serve_forever()
