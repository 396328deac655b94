#!/usr/bin/python3
"""gen_torch_rng.py — reference streams of PyTorch's CPU generator for test_torch_rng.c.

Writes tests/golden/data/torch_rng/cases.json and values.bin (little-endian 32-bit
words): what torch.randn(n, generator=torch.Generator().manual_seed(seed)) gives,
float32, for several seeds and sizes (both sides of torch's n < 16 / n >= 16 split),
streams of several calls on one generator, and raw MT19937 words (torch.randint with
a range of 2^31 returns each word's low 31 bits).

Cases of path "avx2" come from torch's default kernels on an AVX2 CPU (checked below);
cases of path "scalar" from a child process run with ATEN_CPU_CAPABILITY=default,
torch's non-vectorized normal_fill. Run with Debian's torch: /usr/bin/python3
tests/golden/gen_torch_rng.py
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "torch_rng")

SEEDS = [0, 1, 42, 1234567890123, 2**32 + 5]
SIZES = [1, 2, 7, 15, 16, 17, 31, 100, 4 * 64 * 64]
BIG = 256  # above this many elements, keep a prefix, a suffix and a strided sample


def segments(n):
    """[start, count, step] runs of one call's output to keep."""
    if n <= BIG:
        return [[0, n, 1]]
    step = 61
    return [[0, BIG, 1], [BIG, len(range(BIG, n - BIG, step)), step], [n - BIG, BIG, 1]]


def kept(words, segs):
    return [int(words[st + i * step]) for st, cnt, step in segs for i in range(cnt)]


def specs(path):
    """(name, seed, calls, kind) for one path."""
    out = []
    if path == "avx2":
        for s in SEEDS:
            for n in SIZES:
                out.append((f"seed{s}_n{n}", s, [n], "randn"))
        # Euler ancestral: the latents, then one noise draw per step, one generator
        out.append(("stream_latents_then_noise", 42, [16384, 16384, 16384], "randn"))
        # the scalar path's cached second normal lives across calls, and the n >= 16
        # path neither uses nor clears it
        out.append(("stream_mixed", 7, [1, 1, 3, 20, 1, 17, 2, 15, 16, 1], "randn"))
        # many tails (n + 16 words each) across several MT19937 twists
        out.append(("stream_tails", 1234, [100] * 20, "randn"))
        out.append(("words_seed42", 42, [1000], "u31"))
        out.append(("words_seed2^32+5", 2**32 + 5, [1000], "u31"))
        out.append(("words_seed1234567890123", 1234567890123, [700], "u31"))
    else:
        for s in (0, 42):
            for n in (16, 17, 100, 16384):
                out.append((f"scalar_seed{s}_n{n}", s, [n], "randn"))
        out.append(("scalar_stream", 42, [16384, 16384, 5, 33], "randn"))
    return out


def run(path):
    import torch

    cap = torch.__config__.show().split("CPU capability usage:")[1].split()[0]
    want = "AVX2" if path == "avx2" else "NO"  # "NO AVX" under ATEN_CPU_CAPABILITY=default
    if cap != want:
        sys.exit(f"path {path}: torch uses CPU capability {cap}, expected {want}")

    # facts the C side relies on, checked on the real thing
    a = torch.randn(40, generator=torch.Generator().manual_seed(5))
    b = torch.randn(40, generator=torch.Generator().manual_seed(2**32 + 5))
    assert torch.equal(a, b), "seeds are not reduced to 32 bits"
    g = torch.Generator().manual_seed(3)
    torch.randn(1, generator=g)  # leaves a cached normal
    g.manual_seed(3)
    c = torch.randn(2, generator=g)
    assert torch.equal(c, torch.randn(2, generator=torch.Generator().manual_seed(3))), \
        "manual_seed does not clear the cached normal"

    cases = []
    for name, seed, calls, kind in specs(path):
        g = torch.Generator().manual_seed(seed)
        outs = []
        for n in calls:
            if kind == "randn":
                v = torch.randn(n, generator=g, dtype=torch.float32)
                words = v.numpy().view("<u4")
            else:
                v = torch.randint(0, 2**31, (n,), generator=g, dtype=torch.int64)
                words = v.numpy().astype("<u4")
            segs = segments(n)
            outs.append({"n": n, "segments": segs, "words": kept(words, segs)})
        cases.append({"name": name, "seed": seed, "kind": kind, "path": path,
                      "calls": outs})
    return {"torch": torch.__version__, "capability": cap, "cases": cases}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        json.dump(run(sys.argv[2]), sys.stdout)
        return
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    child = subprocess.run([sys.executable, __file__, "--child", "scalar"], env=env,
                           check=True, capture_output=True, text=True)
    parts = [run("avx2"), json.loads(child.stdout)]

    os.makedirs(OUT, exist_ok=True)
    blob = bytearray()
    manifest = {"torch": parts[0]["torch"],
                "values": "values.bin: little-endian 32-bit words, float32 for randn, "
                          "uint32 for u31; each call's kept words at its offset",
                "cases": []}
    for part in parts:
        for c in part["cases"]:
            calls = []
            for call in c["calls"]:
                calls.append({"n": call["n"], "offset": len(blob) // 4,
                              "segments": call["segments"]})
                blob += struct.pack(f"<{len(call['words'])}I", *call["words"])
            manifest["cases"].append({"name": c["name"], "seed": c["seed"],
                                      "kind": c["kind"], "path": c["path"],
                                      "capability": part["capability"],
                                      "calls": calls})
    with open(os.path.join(OUT, "values.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(OUT, "cases.json"), "w") as f:  # one case a line
        head = {k: v for k, v in manifest.items() if k != "cases"}
        f.write(json.dumps(head)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in manifest["cases"]))
        f.write("\n]}\n")
    print(f"{len(manifest['cases'])} cases, {len(blob)} bytes of values in {OUT}")


if __name__ == "__main__":
    main()
