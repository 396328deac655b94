"""server_embed.py — POST /v1/embeddings end to end on random-weight models kiln writes
itself (bert-tiny; a tiny llama to be refused): strings and arrays, float and base64,
usage and truncation, results identical to the CLI and whatever the batching of
concurrent requests, normalize, an embedding program, and refused requests.
"""
import base64
import json
import math
import os
import shutil
import struct
import subprocess
import threading

from kiln_server import KILN, TMP, Checks, Server

t = Checks("server_embed")
root = os.path.join(TMP, f"server_embed.{os.getpid()}")
shutil.rmtree(root, ignore_errors=True)
models = os.path.join(root, "models")
os.makedirs(models)
subprocess.run([KILN, "quantize", "--random", "bert-tiny", os.path.join(models, "embed.gguf"), "f32"], check=True,
               capture_output=True)
subprocess.run([KILN, "quantize", "--random", "tiny", os.path.join(models, "tiny.gguf"), "f32"], check=True,
               capture_output=True)
config = os.path.join(root, "kiln.json")
with open(config, "w") as f:
    json.dump({"programs": {"raw": {"kind": "embedding", "model": "embed", "normalize": False}}}, f)
srv = Server(os.path.join(root, "data"), "--config", config, models=models)
E = "/v1/embeddings"


def err_msg(body):
    return body.get("error", {}).get("message", "") if isinstance(body, dict) else ""


def vec(body, i=0):
    return body["data"][i]["embedding"]


texts = ["hello world", "a second sentence, somewhat longer than the first one", ""]
st, _, one = srv.request("POST", E, {"model": "embed", "input": texts[0]})
t.check("string input: 200, one 128-float unit vector", st == 200 and len(one["data"]) == 1 and
        len(vec(one)) == 128 and abs(math.sqrt(sum(x * x for x in vec(one))) - 1) < 1e-5, one)
t.check("object, index, model, usage, tokens", st == 200 and one["object"] == "list" and
        one["data"][0]["object"] == "embedding" and one["data"][0]["index"] == 0 and one["model"] == "embed" and
        one["usage"] == {"prompt_tokens": 4, "total_tokens": 4} and one["data"][0]["tokens"] == 4 and
        one["data"][0]["truncated"] is False, one)
st, _, many = srv.request("POST", E, {"model": "embed", "input": texts})
t.check("array input: one item per text, in order", st == 200 and [d["index"] for d in many["data"]] == [0, 1, 2])
t.check("a text's vector is the same alone and in an array", st == 200 and vec(many, 0) == vec(one))
t.check("usage sums the texts' tokens", st == 200 and many["usage"]["prompt_tokens"] ==
        sum(d["tokens"] for d in many["data"]), many.get("usage"))
cli = subprocess.run([KILN, "embed", "-m", os.path.join(models, "embed.gguf"), *texts], capture_output=True,
                     text=True)
cli_vecs = [json.loads(l)["embedding"] for l in cli.stdout.splitlines()]
t.check("the same vectors as kiln embed, bit for bit",
        st == 200 and all(struct.pack("<128f", *cli_vecs[i]) == struct.pack("<128f", *vec(many, i))
                          for i in range(3)))
st, _, b = srv.request("POST", E, {"model": "embed", "input": texts[0], "encoding_format": "base64"})
t.check("base64: little-endian f32 of the same vector", st == 200 and
        list(struct.unpack("<128f", base64.b64decode(vec(b)))) == [struct.unpack("<f", struct.pack("<f", x))[0]
                                                                  for x in vec(one)])

# truncation is reported
st, _, long = srv.request("POST", E, {"model": "embed", "input": "word " * 700})
t.check("overlong input: truncated to 512 and said so", st == 200 and long["data"][0]["tokens"] == 512 and
        long["data"][0]["truncated"] is True, long.get("data", [{}])[0].get("tokens"))

# normalize false, and the same through an embedding program
st, _, raw = srv.request("POST", E, {"model": "embed", "input": texts[0], "normalize": False})
norm = math.sqrt(sum(x * x for x in vec(raw))) if st == 200 else 0
t.check("normalize false: the pooled vector as it is", st == 200 and abs(norm - 1) > 1e-3 and
        all(abs(a / norm - b) < 1e-6 for a, b in zip(vec(raw), vec(one))), norm)
st, _, prog = srv.request("POST", E, {"model": "raw", "input": texts[0]})
t.check("an embedding program by name", st == 200 and vec(prog) == vec(raw), prog)

# concurrent requests: batched together by the worker, each answered as if alone
big = {"model": "embed", "input": ["word " * 500] * 48}
alone = {}
for i in range(12):
    s_, _, body = srv.request("POST", E, {"model": "embed", "input": f"request number {i}"})
    alone[i] = vec(body) if s_ == 200 else None
got = {}


def post(i):
    s_, _, body = srv.request("POST", E, {"model": "embed", "input": f"request number {i}"})
    got[i] = vec(body) if s_ == 200 else body


threads = [threading.Thread(target=srv.request, args=("POST", E, big))]
threads += [threading.Thread(target=post, args=(i,)) for i in range(12)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.check("concurrent requests: each gets its own vector, as alone", all(got.get(i) == alone[i] for i in range(12)))
st, _, jobs = srv.request("GET", "/v1/jobs?state=completed&limit=1000")
batched = [j["result"]["batch"]["jobs"] for j in jobs.get("data", []) if j.get("kind") == "embedding" and
           j.get("result", {}).get("batch")] if st == 200 else []
t.check("some jobs ran batched with others", any(n > 1 for n in batched), batched[:20])

# refused, with a message naming why; the server keeps serving
bad = [({"model": "embed", "input": [1, 2, 3]}, 400, "token ids"),
       ({"model": "embed", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
       ({"model": "embed", "input": "x", "dimensions": 64}, 400, "dimensions"),
       ({"model": "embed"}, 400, "input"),
       ({"model": "embed", "input": []}, 400, "input"),
       ({"model": "embed", "input": ["x"] * 2049}, 400, "2049"),
       ({"model": "embed", "input": ["x", 3]}, 400, "string"),
       ({"model": "embed", "input": "x", "temperature": 1}, 400, "temperature"),
       ({"model": "tiny", "input": "x"}, 400, "not an embedding model"),
       ({"model": "nonexistent", "input": "x"}, 404, "nonexistent"),
       ({"input": "x"}, 400, "model")]
for req, code, word in bad:
    st, _, body = srv.request("POST", E, req)
    t.check(f"refused {json.dumps(req)[:50]}: {code} naming '{word}'", st == code and word in err_msg(body),
            (st, err_msg(body)))
st, _, body = srv.request("POST", E, b"{not json")
t.check("malformed JSON: 400", st == 400, body)
st, _, body = srv.request("GET", E)
t.check("GET: 405", st == 405, body)
st, _, body = srv.request("POST", "/v1/completions", {"model": "embed", "prompt": "x"})
t.check("a completion on an embedding model: 400 naming /v1/embeddings", st == 400 and
        "/v1/embeddings" in err_msg(body), (st, err_msg(body)))
st, _, body = srv.request("POST", E, {"model": "embed", "input": texts[0]})
t.check("still serving, same answer", st == 200 and vec(body) == vec(one))

srv.stop()
shutil.rmtree(root, ignore_errors=True)
t.end()
