"""server_api.py — kiln serve end to end on stories260K: the OpenAI routes, the jobs
API (SSE, WebSocket, idempotency, cancel), auth, metrics, limits, and hostile requests.
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from kiln_server import TMP, Checks, Server, WebSocket, require_models

require_models()
t = Checks("server_api")
root = os.path.join(TMP, f"server_api.{os.getpid()}")
shutil.rmtree(root, ignore_errors=True)
os.makedirs(root)
config = os.path.join(root, "kiln.json")
with open(config, "w") as f:
    json.dump({"models": {"tiny": {"file": "stories260K"}, "stories260K": {"keep_alive": 60}},
               "programs": {"story": {"kind": "text", "model": "tiny", "template": "Once upon a time, {prompt}",
                                      "max_tokens": 40, "temperature": 0}}}, f)
srv = Server(os.path.join(root, "data"), "--config", config, "--max-tokens", "1000", "--request-timeout", "3")
C = "/v1/completions"


def err_msg(body):
    return body.get("error", {}).get("message", "") if isinstance(body, dict) else ""


# ---- basics ------------------------------------------------------------------------
st, _, body = srv.request("GET", "/health")
t.check("health 200", st == 200 and body.get("status") == "ok", body)
st, _, body = srv.request("GET", "/v1/models")
ids = [m["id"] for m in body.get("data", [])] if st == 200 else []
t.check("models lists stories260K and the alias", "stories260K" in ids and "tiny" in ids, body)

req = {"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}
st, _, a = srv.request("POST", C, req)
t.check("completion 200", st == 200, a)
if st == 200:
    ch = a["choices"][0]
    t.check("completion object", a["object"] == "text_completion" and a["id"].startswith("cmpl-"), a)
    t.check("greedy text", ch["text"].startswith(", there was a little girl named Lily"), ch)
    t.check("finish_reason length", ch["finish_reason"] == "length", ch)
    t.check("usage", a["usage"]["completion_tokens"] == 30 and
            a["usage"]["total_tokens"] == a["usage"]["prompt_tokens"] + 30, a["usage"])
req2 = dict(req, temperature=1.0, seed=1234)
texts = [srv.request("POST", C, req2)[2]["choices"][0]["text"] for _ in range(2)]
t.check("same seed, same text", texts[0] == texts[1], texts)
st, _, body = srv.request("POST", C, dict(req, stop=["Lily"]))
t.check("stop string", st == 200 and body["choices"][0]["text"] == ", there was a little girl named "
        and body["choices"][0]["finish_reason"] == "stop", body)

# streamed completion: OpenAI chunks, then [DONE]
events = list(srv.sse("POST", C, dict(req, stream=True, stream_options={"include_usage": True})))
datas = [d for _, d in events]
t.check("stream ends with [DONE]", datas and datas[-1] == "[DONE]", datas[-3:])
chunks = [json.loads(d) for d in datas[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
t.check("stream text equals the non-streamed text", text == a["choices"][0]["text"], text)
t.check("stream finish chunk", any(c["choices"] and c["choices"][0]["finish_reason"] == "length" for c in chunks))
t.check("stream usage chunk", chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 30,
        chunks[-1])

# chat (stories260K has no chat template: kiln's default ChatML)
chat = {"model": "stories260K", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 20,
        "temperature": 0}
st, _, body = srv.request("POST", "/v1/chat/completions", chat)
t.check("chat 200", st == 200 and body["object"] == "chat.completion" and
        body["choices"][0]["message"]["role"] == "assistant", body)
datas = [d for _, d in srv.sse("POST", "/v1/chat/completions", dict(chat, stream=True))]
chunks = [json.loads(d) for d in datas[:-1]]
t.check("chat stream: role first, [DONE] last", datas[-1] == "[DONE]" and
        chunks[0]["choices"][0]["delta"].get("role") == "assistant", datas[:2])
t.check("chat stream text = chat text", st == 200 and "".join(
    c["choices"][0]["delta"].get("content", "") for c in chunks) == body["choices"][0]["message"]["content"])

# ---- parameters refused, not ignored; malformed input --------------------------------
bad = [
    ({"model": "stories260K", "prompt": "x", "n": 2}, 400, "'n'"),
    ({"model": "stories260K", "prompt": "x", "logprobs": 3}, 400, "logprobs"),
    ({"model": "stories260K", "prompt": "x", "frobnicate": 1}, 400, "frobnicate"),
    ({"model": "stories260K", "prompt": "x", "max_tokens": -5}, 400, "max_tokens"),
    ({"model": "stories260K", "prompt": "x", "max_tokens": 10 ** 12}, 400, "max_tokens"),
    ({"model": "stories260K", "prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ({"model": "stories260K", "prompt": "x", "top_p": 7}, 400, "top_p"),
    ({"model": "../stories260K", "prompt": "x"}, 400, "plain names"),
    ({"model": "../../../../etc/passwd", "prompt": "x"}, 400, "refused"),
    ({"model": "/etc/passwd", "prompt": "x"}, 400, "refused"),
    ({"model": "nope", "prompt": "x"}, 404, "no model named"),
    ({"prompt": "x"}, 400, "model"),
    ({"model": "stories260K"}, 400, "prompt"),
]
for body_in, want, needle in bad:
    st, _, body = srv.request("POST", C, body_in)
    t.check(f"refused {body_in} -> {want}", st == want and needle in err_msg(body), (st, body))
st, _, body = srv.request("POST", "/v1/chat/completions",
                          {"model": "stories260K", "messages": [{"role": "user", "content": "x"}],
                           "tools": [{"type": "function", "function": {"name": "f"}}]})
t.check("chat tools refused", st == 400 and "tools" in err_msg(body), body)
for raw, needle in [(b'{"model": "stories260K", "prompt": ', "not valid JSON"),
                    (b'{"model": "stories260K", "prompt": "\xff\xfe"}', "UTF-8"),
                    (b"[" * 100000 + b"]" * 100000, "JSON"),
                    (b'"just a string"', "object")]:
    st, _, body = srv.request("POST", C, raw, {"Content-Type": "application/json"})
    t.check(f"malformed body ({needle}) -> 400", st == 400 and needle in err_msg(body), (st, body))
st, _, body = srv.request("GET", "/v1/nothing")
t.check("unknown route 404 with JSON error", st == 404 and err_msg(body), body)
st, _, body = srv.request("GET", C)
t.check("wrong method 405", st == 405, body)


def big_body(n):
    """Sends n bytes of body; returns the status, or 'cut' if the server closed first."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {n}\r\n\r\n".encode())
    sent, block = 0, b"a" * (1 << 20)
    try:
        while sent < n:
            sent += s.send(block[: min(len(block), n - sent)])
    except OSError:
        pass
    try:
        resp = s.recv(4096)
        return int(resp.split(b" ")[1]) if resp else "cut"
    except OSError:
        return "cut"
    finally:
        s.close()


r = big_body(100 << 20)
t.check("100 MB body: 413 or cut off", r in (413, "cut"), r)

# ---- slow client: cut off, others served meanwhile --------------------------------
def slow_client(result):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode())
    t0 = time.time()
    try:
        for _ in range(30):
            s.send(b" ")
            time.sleep(1)
        result.append(("not cut", time.time() - t0))
    except OSError:
        result.append(("cut", time.time() - t0))
    s.close()


res = []
th = threading.Thread(target=slow_client, args=(res,))
th.start()
time.sleep(0.5)
ok = all(srv.request("POST", C, dict(req, max_tokens=5))[0] == 200 for _ in range(5))
t.check("others served while a client dribbles", ok)
th.join()
t.check("dribbling client cut off", res and res[0][0] == "cut" and res[0][1] < 10, res)

# ---- jobs API ------------------------------------------------------------------------
st, _, job = srv.request("POST", "/v1/jobs", {"kind": "text", "model": "stories260K",
                                               "params": {"prompt": "Once", "max_tokens": 64}})
t.check("job accepted 201", st == 201 and job.get("id", "").startswith("job_") and job["state"] == "queued", job)
jid = job.get("id", "")
st, _, done = srv.request("GET", f"/v1/jobs/{jid}")
t.check("job get 200", st == 200 and done["id"] == jid, done)
for _ in range(100):
    st, _, done = srv.request("GET", f"/v1/jobs/{jid}")
    if done.get("state") == "completed":
        break
    time.sleep(0.05)
t.check("job completes with text and progress", done.get("state") == "completed" and done["result"]["text"]
        and done["progress"]["done"] == done["result"]["usage"]["completion_tokens"], done)
st, _, lst = srv.request("GET", "/v1/jobs?state=completed")
t.check("list by state", st == 200 and jid in [j["id"] for j in lst["data"]], lst)
st, _, body = srv.request("GET", "/v1/jobs?state=bogus")
t.check("bad state 400", st == 400, body)
st, _, body = srv.request("GET", "/v1/jobs/job_0000000000000000")
t.check("unknown job 404", st == 404 and err_msg(body), body)
st, _, body = srv.request("GET", "/v1/jobs/../../etc/passwd")
t.check("hostile job id 404", st in (400, 404), body)
st, _, body = srv.request("POST", "/v1/jobs", {"model": "stories260K", "params": {"prompt": "x"}, "color": 1})
t.check("unknown request key 400", st == 400 and "color" in err_msg(body), body)
st, _, body = srv.request("POST", "/v1/jobs", {"kind": "image", "model": "stories260K", "params": {"prompt": "x"}})
t.check("image kind on a language model: 400 naming the model's kind", st == 400 and
        "not an image model" in err_msg(body), body)
st, _, body = srv.request("POST", "/v1/jobs", {"kind": "train", "model": "stories260K"})
t.check("train kind: clear not-available error", st == 400 and "not available" in err_msg(body), body)

# idempotency
k = {"Idempotency-Key": f"key-{os.getpid()}"}
jr = {"model": "stories260K", "params": {"prompt": "Lily", "max_tokens": 8}}
s1, _, j1 = srv.request("POST", "/v1/jobs", jr, k)
s2, _, j2 = srv.request("POST", "/v1/jobs", jr, k)
t.check("idempotent retry returns the same job", s1 == 201 and s2 == 200 and j1["id"] == j2["id"], (s1, s2))

# programs
st, _, pj = srv.request("POST", "/v1/jobs", {"program": "story", "params": {"prompt": "a cat"}})
t.check("program job accepted", st == 201 and pj.get("program") == "story", pj)
if st == 201:
    for _ in range(100):
        pj = srv.request("GET", f"/v1/jobs/{pj['id']}")[2]
        if pj["state"] == "completed":
            break
        time.sleep(0.05)
    t.check("program applies template and defaults", pj["params"]["prompt"] == "a cat" and
            pj["params"]["max_tokens"] == 40 and pj["params"]["temperature"] == 0 and pj["state"] == "completed", pj)
st, _, body = srv.request("GET", "/v1/programs")
t.check("programs listed with their defaults", st == 200 and body["data"][0]["id"] == "story" and
        body["data"][0]["params"]["template"] == "Once upon a time, {prompt}", body)
st, _, body = srv.request("POST", "/v1/jobs", {"program": "nope", "params": {"prompt": "x"}})
t.check("unknown program 404", st == 404, body)

# SSE events of a job: queued, started, progress, deltas, completed
st, _, job = srv.request("POST", "/v1/jobs", {"model": "stories260K", "params": {"prompt": "Once", "max_tokens": 100}})
evs = list(srv.sse("GET", f"/v1/jobs/{job['id']}/events"))
names = [e for e, _ in evs]
t.check("events: queued first, completed last", names and names[0] == "queued" and names[-1] == "completed", names[:3])
t.check("events: started, progress, delta", {"started", "progress", "delta"} <= set(names), set(names))
final = json.loads(evs[-1][1]) if evs else {}
deltas = "".join(json.loads(d)["text"] for e, d in evs if e == "delta")
t.check("deltas add up to the result", final.get("result", {}).get("text") == deltas)
prog = [json.loads(d) for e, d in evs if e == "progress"]
t.check("progress has total and eta", prog and all("eta_seconds" in p and p["total"] == 100 for p in prog), prog[:2])

# WebSocket: the same events
st, _, job = srv.request("POST", "/v1/jobs", {"model": "stories260K", "params": {"prompt": "Once", "max_tokens": 50}})
ws = WebSocket(srv.port, f"/v1/jobs/{job['id']}/ws")
t.check("websocket 101 with the right accept key", ws.status == 101 and ws.accept_ok, ws.status)
got, close_code = [], None
try:
    ws.send(0x9, b"hi")  # a ping: the server answers with a pong
    while True:
        op, payload = ws.recv()
        if op == 0x1:
            got.append(json.loads(payload)["event"])
        elif op == 0xA:
            got.append("pong")
        elif op == 0x8:
            close_code = int.from_bytes(payload[:2], "big")
            break
except (EOFError, OSError) as e:
    got.append(repr(e))
ws.close()
t.check("websocket events end with completed, then close 1000",
        "completed" in got and close_code == 1000 and "pong" in got, (got[-3:], close_code))
s = socket.create_connection(("127.0.0.1", srv.port))
s.sendall(f"GET /v1/jobs/{job['id']}/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
          .encode())
t.check("websocket without key: 400", s.recv(100).split(b" ")[1] == b"400")
s.close()

# ---- cancel -------------------------------------------------------------------------
def running_job():
    """Submits long jobs until one is caught running; returns its id."""
    for _ in range(20):
        st, _, job = srv.request("POST", "/v1/jobs", {"model": "stories260K",
                                                       "params": {"prompt": "Once", "max_tokens": 1000}})
        for e, d in srv.sse("GET", f"/v1/jobs/{job['id']}/events"):
            if e == "delta":
                srv.last_conn.close()
                return job["id"]
    return None


jid = running_job()
st, _, cj = srv.request("DELETE", f"/v1/jobs/{jid}")
t.check("cancel returns the cancelled job", st == 200 and cj["state"] in ("cancelled", "completed"), cj)
if cj.get("state") == "cancelled":
    t.check("a running job stops within one token of the cancel",
            cj["result"]["tokens_after_cancel"] <= 1 and cj["progress"]["done"] < 1000, cj["result"])
else:
    print("note: the job finished before the cancel arrived")

# closing the SSE stream of a streaming completion cancels its job
cancelled = False
for _ in range(10):
    c = srv.conn()
    c.request("POST", C, json.dumps(dict(req, max_tokens=1000, stream=True, temperature=0.8)),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    jid = r.getheader("X-Kiln-Job")
    r.readline()
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    for _ in range(100):
        j = srv.request("GET", f"/v1/jobs/{jid}")[2]
        if j["state"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    if j["state"] == "cancelled":
        cancelled = "disconnected" in j.get("error", "")
        break
t.check("closing a stream cancels its job", cancelled, j)

# ---- queue bound: 429 with Retry-After ------------------------------------------------
codes, retry = [], None
for _ in range(300):
    st, h, body = srv.request("POST", "/v1/jobs", {"model": "stories260K", "params": {"prompt": "a", "max_tokens": 500}})
    codes.append(st)
    if st == 429:
        retry = h.get("retry-after")
        break
t.check("full queue answers 429 with Retry-After", 429 in codes and retry, codes[-3:])
time.sleep(0.2)

# ---- metrics ----------------------------------------------------------------------------
st, h, body = srv.request("GET", "/metrics")
text = body.decode() if isinstance(body, bytes) else json.dumps(body)
t.check("metrics 200 text", st == 200 and "kiln_http_requests_total" in text and "kiln_tokens_generated_total" in text
        and 'kiln_jobs{state="completed"}' in text, text[:300])
promtool = shutil.which("promtool")
if promtool:
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    t.check("promtool check metrics accepts /metrics", p.returncode == 0, p.stdout + p.stderr)
else:
    print("note: promtool not installed; /metrics not linted")
st, _, body = srv.request("GET", "/health")
t.check("health lists the loaded model", st == 200 and any(m["name"] == "stories260K" for m in body["models_loaded"]),
        body)

t.check("server still alive", srv.proc.poll() is None)
t.check("clean shutdown", srv.stop() == 0)

# ---- auth -----------------------------------------------------------------------------
with open(os.path.join(root, "keys.txt"), "w") as f:
    f.write("# keys\nsekret\n\nother-key\n")
auth = Server(os.path.join(root, "auth"), "--api-key-file", os.path.join(root, "keys.txt"))
st, _, _ = auth.request("GET", "/health")
t.check("auth: health needs no key", st == 200)
st, h, body = auth.request("GET", "/v1/models")
t.check("auth: 401 without key, JSON error", st == 401 and err_msg(body), body)
st, _, _ = auth.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
t.check("auth: 401 with a wrong key", st == 401)
st, _, _ = auth.request("GET", "/metrics", headers={"Authorization": "Bearer sekret"})
t.check("auth: 200 with the key", st == 200)
st, _, _ = auth.request("GET", "/v1/models", headers={"Authorization": "Bearer other-key"})
t.check("auth: every key of the file works", st == 200)
auth.stop()
warn = Server(os.path.join(root, "open"), "--host", "0.0.0.0")
warn.stop()
t.check("warning when listening beyond loopback without a key", "WARNING" in open(warn.log_path).read())

# ---- memory budget: a model that cannot fit gets 507, the server keeps serving -------------
small = Server(os.path.join(root, "small"), "--memory-budget", "512K")
st, _, body = small.request("POST", C, req)
t.check("over the memory budget: 507 with the sizes", st == 507 and "memory budget" in err_msg(body), (st, body))
st, _, _ = small.request("GET", "/health")
t.check("still serving after a 507", st == 200)
small.stop()

# ---- connection limit: extra connections are refused, the server recovers --------------
lim = Server(os.path.join(root, "lim"), "--max-connections", "4")
idle = [socket.create_connection(("127.0.0.1", lim.port)) for _ in range(4)]
time.sleep(0.2)
try:
    st = lim.request("GET", "/health", timeout=3)[0]
except OSError:
    st = "refused"
t.check("a fifth connection is refused", st == "refused", st)
for s in idle:
    s.close()
time.sleep(0.3)
st, _, _ = lim.request("GET", "/health")
t.check("served again once connections close", st == 200)
lim.stop()

shutil.rmtree(root, ignore_errors=True)
t.end()
