"""server_image.py — image jobs and POST /v1/images/generations end to end on a
random-weight Stable Diffusion model kiln writes itself (sd-tiny; a tiny llama to be
refused): b64_json and url answers decode to PNGs of the asked size carrying the
parameters chunk, n=2 gives seeds s and s+1, the stored outputs and their route (with
path traversal refused), image programs with a template, the jobs API with progress and
preview events over SSE and WebSocket, cancel of a running image job, the queue limit,
and refused requests (the server keeps serving).
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import zlib

from kiln_server import KILN, TMP, Checks, Server, WebSocket

t = Checks("server_image")
root = os.path.join(TMP, f"server_image.{os.getpid()}")
shutil.rmtree(root, ignore_errors=True)
models = os.path.join(root, "models")
os.makedirs(models)
subprocess.run([KILN, "quantize", "--random", "sd-tiny", os.path.join(models, "sd"), "f16"], check=True,
               capture_output=True)
subprocess.run([KILN, "quantize", "--random", "tiny", os.path.join(models, "tiny.gguf"), "f32"], check=True,
               capture_output=True)
config = os.path.join(root, "kiln.json")
with open(config, "w") as f:
    json.dump({"programs": {"detailed": {"kind": "image", "model": "sd", "template": "{prompt}, highly detailed",
                                         "steps": 3, "cfg_scale": 5, "size": "64x128", "sampler": "euler",
                                         "negative_prompt": "blurry"},
                            "story": {"kind": "text", "model": "tiny", "max_tokens": 4}}}, f)
data = os.path.join(root, "data")
srv = Server(data, "--config", config, "--threads", "1", "--max-queue", "4", models=models)
G = "/v1/images/generations"


def err_msg(body):
    return body.get("error", {}).get("message", "") if isinstance(body, dict) else ""


def png_info(raw):
    """(width, height, {text key: value}) of a PNG, checking every chunk's CRC."""
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", raw[:8]
    i, texts, size = 8, {}, None
    while i < len(raw):
        n, = struct.unpack(">I", raw[i:i + 4])
        kind, body = raw[i + 4:i + 8], raw[i + 8:i + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", raw[i + 8 + n:i + 12 + n])[0], kind
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            texts[k.decode()] = v.decode("latin-1")
        i += 12 + n
    return size[0], size[1], texts


def png_ok(raw, w, h, seed=None):
    try:
        pw, ph, texts = png_info(raw)
    except Exception as e:  # noqa: BLE001 - any parse failure is a test failure
        return f"not a PNG: {e}"
    if (pw, ph) != (w, h):
        return f"size {pw}x{ph}, want {w}x{h}"
    p = texts.get("parameters", "")
    if f"Size: {w}x{h}" not in p or (seed is not None and f"Seed: {seed}," not in p):
        return f"parameters: {p!r}"
    return ""


# ---- /v1/images/generations: b64_json -------------------------------------------------
req = {"model": "sd", "prompt": "a lighthouse at dusk", "n": 2, "size": "64x96", "seed": 1234, "steps": 4,
       "sampler": "dpmpp_2m", "negative_prompt": "fog"}
st, hdr, b64 = srv.request("POST", G, req)
t.check("b64_json: 200 with two images and created", st == 200 and len(b64.get("data", [])) == 2 and
        isinstance(b64.get("created"), int) and abs(b64["created"] - time.time()) < 120, (st, str(b64)[:300]))
imgs = [base64.b64decode(d["b64_json"]) for d in b64.get("data", [])] if st == 200 else []
t.check("b64_json: PNGs of 64x96 with the parameters chunk (seeds 1234, 1235)",
        len(imgs) == 2 and not png_ok(imgs[0], 64, 96, 1234) and not png_ok(imgs[1], 64, 96, 1235),
        [png_ok(x, 64, 96) for x in imgs])
t.check("n=2: seeds s and s+1", st == 200 and [d.get("seed") for d in b64["data"]] == [1234, 1235], b64.get("data"))
t.check("no revised_prompt without a template", st == 200 and "revised_prompt" not in b64["data"][0])
t.check("b64_json is kiln's default", st == 200 and "url" not in b64["data"][0])
job_id = hdr.get("x-kiln-job", "")
t.check("X-Kiln-Job names the job, also in the body", job_id.startswith("job_") and b64.get("job") == job_id, hdr)
st, _, job = srv.request("GET", f"/v1/jobs/{job_id}")
t.check("the job is in the jobs API, completed, kind image", st == 200 and job["state"] == "completed" and
        job["kind"] == "image" and job["progress"] == {"done": 4, "total": 4}, job)
res = job.get("result", {}) if st == 200 else {}
t.check("its result lists file, parameters and metadata per image",
        [i.get("file") for i in res.get("images", [])] == [f"outputs/{job_id}/0.png", f"outputs/{job_id}/1.png"] and
        res["images"][1]["metadata"].get("seed") == "1235" and
        res["images"][0]["parameters"].startswith("a lighthouse at dusk\nNegative prompt: fog\nSteps: 4, "
                                                  "Sampler: DPM++ 2M"), res)
t.check("the files are stored under the data dir, as served",
        all(open(os.path.join(data, "outputs", job_id, f"{i}.png"), "rb").read() == imgs[i] for i in range(2)) and
        os.path.isfile(os.path.join(data, "outputs", job_id, "1.json")))

# the same request again: the same images (the seed decides)
st, _, again = srv.request("POST", G, req)
t.check("same seed, same images", st == 200 and [d["b64_json"] for d in again["data"]] ==
        [d["b64_json"] for d in b64["data"]])

# ---- url ---------------------------------------------------------------------------------
st, _, u = srv.request("POST", G, {"model": "sd", "prompt": "a red boat", "response_format": "url", "seed": 7,
                                   "steps": 2, "size": "auto", "quality": "auto", "user": "u1"})
url = u["data"][0].get("url", "") if st == 200 else ""
t.check("url: an absolute URL of the outputs route", url.startswith(f"http://127.0.0.1:{srv.port}/v1/outputs/job_")
        and url.endswith("/0.png") and "b64_json" not in u["data"][0], u)
path = url[len(f"http://127.0.0.1:{srv.port}"):]
st, h, raw = srv.request("GET", path)
t.check("the URL serves the PNG (image/png) of the model's native size", st == 200 and
        h.get("content-type") == "image/png" and not png_ok(raw, 64, 64, 7), (st, h.get("content-type")))
st, h, meta = srv.request("GET", path[:-4] + ".json")
t.check("and its JSON sidecar (application/json)", st == 200 and h.get("content-type") == "application/json" and
        meta.get("seed") == "7" and meta.get("steps") == 2, meta)

# ---- the outputs route is sandboxed ---------------------------------------------------------
jid = path.split("/")[3]
bad_paths = ["/v1/outputs/../jobs.db", f"/v1/outputs/{jid}/../../jobs.db", f"/v1/outputs/{jid}/..%2f..%2fjobs.db",
             "/v1/outputs/%2e%2e/jobs.db", f"/v1/outputs/{jid}/%2e%2e%2f%2e%2e%2fjobs.db",
             f"/v1/outputs/{jid}/0.png/..", f"/v1/outputs/{jid}/..", f"/v1/outputs/{jid}", "/v1/outputs/",
             f"/v1/outputs/{jid}/0.png%00.txt", f"/v1/outputs/{jid}//0.png", "/v1/outputs/job_../jobs.db",
             f"/v1/outputs/{jid}/jobs.db", "/v1/outputs/..%2fjobs.db/0.png", f"/v1/outputs/{jid}/00.png",
             f"/v1/outputs/{jid}/16.png", "/v1/outputs/job_0000000000000000/0.png"]
leaks = []
for p in bad_paths:
    st, _, body = srv.request("GET", p)
    if st not in (400, 404) or (isinstance(body, bytes) and body[:16] == b"SQLite format 3\0"):
        leaks.append((p, st))
t.check("path traversal and odd names on /v1/outputs: 400/404, never a file", not leaks, leaks)
st, _, body = srv.request("POST", path)
t.check("POST on an output: 405", st == 405, st)

# ---- an image program: template, defaults, revised_prompt -------------------------------------
st, _, pr = srv.request("POST", G, {"model": "detailed", "prompt": "a fox", "seed": 5})
raw = base64.b64decode(pr["data"][0]["b64_json"]) if st == 200 else b""
t.check("image program: its size and template; revised_prompt says what the model read", st == 200 and
        pr["data"][0].get("revised_prompt") == "a fox, highly detailed" and not png_ok(raw, 64, 128, 5), pr)
t.check("image program: its parameters in the PNG", raw and png_info(raw)[2]["parameters"].startswith(
    "a fox, highly detailed\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 5"))

# ---- the jobs API: progress and preview events, SSE and WebSocket --------------------------
st, _, j = srv.request("POST", "/v1/jobs", {"kind": "image", "model": "sd",
                                            "params": {"prompt": "x", "steps": 6, "preview_every": 3, "seed": 2}})
t.check("POST /v1/jobs kind image: 201, total = steps", st == 201 and j["kind"] == "image" and
        j["progress"]["total"] == 6 and j["params"]["seed"] == 2, j)
events = list(srv.sse("GET", f"/v1/jobs/{j['id']}/events")) if st == 201 else []
prog = [json.loads(d) for e, d in events if e == "progress"]
prev = [json.loads(d) for e, d in events if e == "preview"]
t.check("SSE: a progress event per step with step, steps, eta", [p["step"] for p in prog] == list(range(1, 7)) and
        all(p["steps"] == 6 and p["total"] == 6 and p["done"] == p["step"] and "eta_seconds" in p for p in prog),
        prog)
t.check("SSE: previews at steps 3 and 6, small PNGs", [p["step"] for p in prev] == [3, 6] and
        all(png_info(base64.b64decode(p["b64_png"]))[:2] == (8, 8) for p in prev), [p.get("step") for p in prev])
t.check("SSE: started first, completed last with the result", events and events[0][0] in ("queued", "started") and
        events[-1][0] == "completed" and json.loads(events[-1][1])["result"]["images"][0]["seed"] == 2,
        [e for e, _ in events])
st, _, j = srv.request("POST", "/v1/jobs", {"kind": "image", "model": "sd", "params": {"prompt": "y", "steps": 3}})
ws = WebSocket(srv.port, f"/v1/jobs/{j['id']}/ws")
names = []
while True:
    op, payload = ws.recv()
    if op != 1:
        break
    m = json.loads(payload)
    names.append(m["event"])
    if m["event"] in ("completed", "failed", "cancelled"):
        break
t.check("WebSocket: the same progress events", names.count("progress") == 3 and names[-1] == "completed", names)
st, _, j = srv.request("POST", "/v1/jobs", {"program": "detailed", "params": {"prompt": "a cat", "n": 2}})
t.check("POST /v1/jobs with an image program", st == 201 and j["kind"] == "image" and j["program"] == "detailed" and
        j["params"]["template"] == "{prompt}, highly detailed", j)

# ---- cancel a running image job -----------------------------------------------------------------
slow = {"kind": "image", "model": "sd", "params": {"prompt": "slow", "steps": 150, "size": "256x256", "seed": 3}}
st, _, j = srv.request("POST", "/v1/jobs", slow)
steps_seen = 0
for e, d in srv.sse("GET", f"/v1/jobs/{j['id']}/events"):
    if e == "progress":
        steps_seen += 1
        if steps_seen == 2:
            break
srv.last_conn.close()
st, _, c = srv.request("DELETE", f"/v1/jobs/{j['id']}")
t.check("DELETE a running image job: cancelled at the next step", st == 200 and c["state"] == "cancelled" and
        c["result"]["steps_after_cancel"] <= 1 and 2 <= c["progress"]["done"] < 150, c)
t.check("a cancelled job stores no image", not os.path.exists(os.path.join(data, "outputs", j["id"], "0.png")))

# an images request whose job is cancelled through the jobs API answers 409
got = {}


def gen_slow():
    got["r"] = srv.request("POST", G, {"model": "sd", "prompt": "slow", "steps": 150, "size": "256x256"})


th = threading.Thread(target=gen_slow)
th.start()
running = None
for _ in range(200):
    st, _, lst = srv.request("GET", "/v1/jobs?state=running")
    running = next((x for x in lst.get("data", []) if x["kind"] == "image"), None) if st == 200 else None
    if running and running["progress"]["done"] > 0:
        break
    time.sleep(0.05)
if running:
    srv.request("DELETE", f"/v1/jobs/{running['id']}")
th.join(60)
st, _, body = got.get("r", (0, {}, {}))
t.check("an images request whose job is cancelled: 409 naming the job", st == 409 and running and
        running["id"] in err_msg(body), (st, err_msg(body)))

# ---- the queue limit (--max-queue 4) -------------------------------------------------------------
ids = []
codes = []
for _ in range(7):
    st, h, j = srv.request("POST", "/v1/jobs", slow)
    codes.append(st)
    if st == 201:
        ids.append(j["id"])
st, h, body = srv.request("POST", G, {"model": "sd", "prompt": "x"})
t.check("a full queue: 429 with Retry-After, for the images route too", 429 in codes and st == 429 and
        h.get("retry-after") and "queue is full" in err_msg(body), (codes, st, err_msg(body)))
for i in ids:
    srv.request("DELETE", f"/v1/jobs/{i}")

# ---- refused, with a message naming why; the server keeps serving ------------------------------
bad = [({"model": "sd", "prompt": "x", "size": "65x64"}, 400, "multiple of 8"),
       ({"model": "sd", "prompt": "x", "size": "big"}, 400, "WIDTHxHEIGHT"),
       ({"model": "sd", "prompt": "x", "size": "72x64"}, 400, "multiples of 16"),
       ({"model": "sd", "prompt": "x", "sampler": "plms"}, 400, "unknown sampler 'plms'"),
       ({"model": "sd", "prompt": "x", "steps": 0}, 400, "'steps'"),
       ({"model": "sd", "prompt": "x", "n": 17}, 400, "'n'"),
       ({"model": "sd", "prompt": "x", "seed": "abc"}, 400, "'seed'"),
       ({"model": "sd", "prompt": "x", "rng": "gpu"}, 400, "'rng'"),
       ({"model": "sd"}, 400, "'prompt' is required"),
       ({"model": "sd", "prompt": 5}, 400, "'prompt'"),
       ({"prompt": "x"}, 400, "'model'"),
       ({"model": "tiny", "prompt": "x"}, 400, "not an image model"),
       ({"model": "story", "prompt": "x"}, 400, "kind text"),
       ({"model": "nonexistent", "prompt": "x"}, 404, "nonexistent"),
       ({"model": "sd", "prompt": "x", "response_format": "jpeg"}, 400, "response_format"),
       ({"model": "sd", "prompt": "x", "style": "vivid"}, 400, "style"),
       ({"model": "sd", "prompt": "x", "quality": "hd"}, 400, "quality"),
       ({"model": "sd", "prompt": "x", "stream": True}, 400, "stream"),
       ({"model": "sd", "prompt": "x", "temperature": 1}, 400, "temperature"),
       ({"model": "sd", "prompt": "x", "cfg_scale": 5, "guidance": 5}, 400, "give one")]
for body_in, code, word in bad:
    st, _, body = srv.request("POST", G, body_in)
    t.check(f"refused {json.dumps(body_in)[:60]}: {code} naming '{word}'", st == code and word in err_msg(body),
            (st, err_msg(body)))
st, _, body = srv.request("POST", "/v1/chat/completions", {"model": "sd", "messages": [{"role": "user",
                                                                                         "content": "x"}]})
t.check("chat on an image model: 400 naming /v1/images/generations", st == 400 and
        "/v1/images/generations" in err_msg(body), (st, err_msg(body)))
st, _, body = srv.request("POST", "/v1/embeddings", {"model": "sd", "input": "x"})
t.check("embeddings on an image model: 400", st == 400 and "image model" in err_msg(body), (st, err_msg(body)))
st, _, body = srv.request("POST", "/v1/jobs", {"kind": "image", "model": "sd", "params": {"steps": 2}})
t.check("an image job without a prompt: 400", st == 400 and "needs 'prompt'" in err_msg(body), err_msg(body))
st, _, body = srv.request("GET", G)
t.check("GET on the images route: 405", st == 405, st)
st, _, body = srv.request("POST", G, b"{not json")
t.check("malformed JSON: 400", st == 400, body)
st, _, models_list = srv.request("GET", "/v1/models")
t.check("/v1/models lists the diffusers folder", st == 200 and any(
    m["id"] == "sd" and m["format"] == "diffusers" for m in models_list["data"]), models_list)
st, _, again = srv.request("POST", G, req)
t.check("still serving, same images", st == 200 and [d["b64_json"] for d in again["data"]] ==
        [d["b64_json"] for d in b64["data"]])
srv.stop()

# ---- with an API key: the outputs route needs it too ---------------------------------------------
srv = Server(os.path.join(root, "data2"), "--api-key", "k1", "--threads", "1", models=models)
auth = {"Authorization": "Bearer k1"}
st, _, u = srv.request("POST", G, {"model": "sd", "prompt": "x", "steps": 1, "response_format": "url"}, headers=auth)
path = u["data"][0]["url"].split(f":{srv.port}", 1)[1] if st == 200 else "/v1/outputs/x/0.png"
st1, _, _ = srv.request("GET", path)
st2, h, raw = srv.request("GET", path, headers=auth)
t.check("outputs need the API key (401 without, 200 with)", st1 == 401 and st2 == 200 and
        h.get("content-type") == "image/png", (st1, st2))
srv.stop()
shutil.rmtree(root, ignore_errors=True)
t.end()
