"""kiln_server.py — start `kiln serve` for a test and talk HTTP, SSE and WebSocket to it.

Standard library only (the tests run with Debian's /usr/bin/python3). Each server
gets a free port (--port 0; the port is read from its log line) and its own data dir.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

KILN = os.environ.get("KILN_BIN", "build/kiln")
SHARED = os.environ.get("KILN_SHARED", "../shared")
TMP = os.environ.get("KILN_TMP", "/tmp")
MODELS = os.path.join(SHARED, "models")


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


def require_models():
    if not os.path.isfile(os.path.join(MODELS, "stories260K", "stories260K.bin")):
        skip(MODELS + "/stories260K missing")


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, detail if detail else "", flush=True)
        return cond

    def end(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


class Server:
    def __init__(self, data, *args, models=MODELS):
        self.data = data
        self.log_path = data + ".log"
        self.args = ["serve", "--models", models, "--data", data, "--port", "0", *args]
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        offset = self.log.tell()  # a restart appends: read only this run's lines
        self.proc = subprocess.Popen([KILN, *self.args], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        self.port = None
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("kiln serve exited: " + open(self.log_path).read())
            with open(self.log_path) as f:
                f.seek(offset)
                m = re.findall(r"listening on http://[^:]+:(\d+)", f.read())
            if m:
                self.port = int(m[-1])
            else:
                time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("kiln serve did not start: " + open(self.log_path).read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """Returns (status, headers dict (lower-case), parsed JSON or raw bytes)."""
        c = self.conn(timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def sse(self, method, path, body=None, headers=None, timeout=60):
        """Yields (event, data) pairs of a server-sent event stream; the response's
        status is in self.last_status."""
        c = self.conn(timeout)
        h = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        self.last_status = r.status
        self.last_conn = c
        event, data = None, []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    yield event, "\n".join(data)
                event, data = None, []
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" ") if line.startswith("data: ") else line[5:])
        c.close()


class WebSocket:
    """A minimal RFC 6455 client: handshake, masked text frames out, frames in."""

    def __init__(self, port, path, headers=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ")[1]) if head else 0
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        got = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-accept:")]
        self.accept_ok = got == [want]

    def _recv_exact(self, n):
        b = b""
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            if not chunk:
                raise EOFError
            b += chunk
        return b

    def recv(self):
        """Returns (opcode, payload bytes)."""
        h = self._recv_exact(2)
        op, n = h[0] & 0x0F, h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._recv_exact(8))[0]
        return op, self._recv_exact(n)

    def send(self, op, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | op])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self):
        self.s.close()
