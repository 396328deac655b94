#!/usr/bin/python3
"""Golden references for kiln's Llama-family models.

Writes tiny random-weight models in the file kinds kiln reads (Hugging Face folders
with safetensors, GGUF files) and, for each, the logits a float64 PyTorch
implementation of the Hugging Face forward pass gives on fixed token ids. kiln must
agree within the tolerance stated per case (see README.md and test_golden_llama.c).

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_llama.py
The safetensors and GGUF files are written by the small writers below (no
third-party packages besides torch and numpy).
"""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
IDS = [1, 17, 200, 45, 3, 99, 128, 7, 255, 64, 31, 2, 150, 88]

BASE = dict(vocab=256, dim=64, ff=128, layers=2, heads=8, kv_heads=4, eps=1e-5, theta=10000.0, ctx=256)


# ---- weights ------------------------------------------------------------------------

def make_weights(cfg, seed):
    g = np.random.default_rng(seed)
    d, hd = cfg["dim"], cfg["dim"] // cfg["heads"]
    qd, kvd = cfg["heads"] * hd, cfg["kv_heads"] * hd
    w = {"embed": g.normal(0, 0.5, (cfg["vocab"], d)),
         "norm": 1 + g.normal(0, 0.1, d),
         "lm_head": g.normal(0, 0.1, (cfg["vocab"], d)),
         "layers": []}
    for _ in range(cfg["layers"]):
        L = {"in_norm": 1 + g.normal(0, 0.1, d), "post_norm": 1 + g.normal(0, 0.1, d),
             "q": g.normal(0, 0.15, (qd, d)), "k": g.normal(0, 0.15, (kvd, d)),
             "v": g.normal(0, 0.15, (kvd, d)), "o": g.normal(0, 0.15, (d, qd)),
             "gate": g.normal(0, 0.15, (cfg["ff"], d)), "up": g.normal(0, 0.15, (cfg["ff"], d)),
             "down": g.normal(0, 0.1, (d, cfg["ff"]))}
        if cfg.get("bias"):
            L["bq"], L["bk"], L["bv"] = g.normal(0, 0.1, qd), g.normal(0, 0.1, kvd), g.normal(0, 0.1, kvd)
        w["layers"].append(L)
    if cfg.get("tied"):
        w["lm_head"] = w["embed"]
    return w


def map_matrices(w, fn):
    """Applies fn to every 2-D weight (the ones stored in the case's type)."""
    out = dict(w)
    out["embed"] = fn(w["embed"])
    out["lm_head"] = out["embed"] if w["lm_head"] is w["embed"] else fn(w["lm_head"])
    out["layers"] = []
    for L in w["layers"]:
        L2 = dict(L)
        for k in ("q", "k", "v", "o", "gate", "up", "down"):
            L2[k] = fn(L[k])
        out["layers"].append(L2)
    return out


# ---- number formats -------------------------------------------------------------------

def to_f16(a):
    return a.astype(np.float16)


def to_bf16_bits(a):
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f64(b):
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def quant_q8_0(a):
    """GGUF Q8_0 blocks (as llama.cpp's reference quantizer): d = amax/127, q = round(x/d)."""
    x = a.astype(np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, 1.0 / d, 0.0).astype(np.float32)
    # roundf: half away from zero (numpy's round is half to even)
    q = (np.sign(x * inv[:, None]) * np.floor(np.abs(x * inv[:, None]) + 0.5)).astype(np.int8)
    dh = d.astype(np.float16)
    raw = b"".join(dh[i].tobytes() + q[i].tobytes() for i in range(len(x)))
    deq = (q.astype(np.float64) * dh.astype(np.float64)[:, None]).reshape(a.shape)
    return raw, deq


def quant_q4_0(a):
    """GGUF Q4_0 blocks: d = (value of largest magnitude)/-8, q = min(15, trunc(x/d + 8.5))."""
    x = a.astype(np.float32).reshape(-1, 32)
    idx = np.abs(x).argmax(axis=1)
    mx = x[np.arange(len(x)), idx]
    d = (mx / -8.0).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, 1.0 / d, 0.0).astype(np.float32)
    q = np.minimum(15, np.trunc(x * inv[:, None] + 8.5)).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    dh = d.astype(np.float16)
    raw = b"".join(dh[i].tobytes() + packed[i].tobytes() for i in range(len(x)))
    deq = ((q.astype(np.float64) - 8) * dh.astype(np.float64)[:, None]).reshape(a.shape)
    return raw, deq


# ---- reference forward (Hugging Face semantics, float64) ---------------------------------

def inv_freq(cfg):
    hd = cfg["dim"] // cfg["heads"]
    f = 1.0 / (cfg["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    sc = cfg.get("scaling")
    if sc and sc["rope_type"] == "linear":
        f = f / sc["factor"]
    elif sc and sc["rope_type"] == "llama3":
        low_wl = sc["original_max_position_embeddings"] / sc["low_freq_factor"]
        high_wl = sc["original_max_position_embeddings"] / sc["high_freq_factor"]
        wl = 2 * math.pi / f
        smooth = (sc["original_max_position_embeddings"] / wl - sc["low_freq_factor"]) / (
            sc["high_freq_factor"] - sc["low_freq_factor"])
        scaled = np.where(wl > low_wl, f / sc["factor"], f)
        mid = (wl <= low_wl) & (wl >= high_wl)
        f = np.where(mid, (1 - smooth) * f / sc["factor"] + smooth * f, scaled)
    return f


def rope(x, ang, interleaved):
    """x: (heads, T, hd). HF rotates halves (i, i+hd/2); GGUF llama rotates pairs (2i, 2i+1)."""
    cos, sin = torch.cos(ang), torch.sin(ang)  # (T, hd/2)
    if interleaved:
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


def forward(cfg, w, ids, interleaved=False):
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)
    T, nh, nkv = len(ids), cfg["heads"], cfg["kv_heads"]
    hd = cfg["dim"] // nh
    rms = lambda x, g: x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg["eps"]) * t(g)
    x = t(w["embed"])[ids]
    ang = torch.arange(T, dtype=torch.float64)[:, None] * t(inv_freq(cfg))[None, :]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for L in w["layers"]:
        h = rms(x, L["in_norm"])
        q, k, v = h @ t(L["q"]).T, h @ t(L["k"]).T, h @ t(L["v"]).T
        if "bq" in L:
            q, k, v = q + t(L["bq"]), k + t(L["bk"]), v + t(L["bv"])
        q = rope(q.view(T, nh, hd).transpose(0, 1), ang, interleaved)
        k = rope(k.view(T, nkv, hd).transpose(0, 1), ang, interleaved)
        v = v.view(T, nkv, hd).transpose(0, 1)
        k, v = k.repeat_interleave(nh // nkv, 0), v.repeat_interleave(nh // nkv, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1)
        x = x + (att @ v).transpose(0, 1).reshape(T, nh * hd) @ t(L["o"]).T
        h = rms(x, L["post_norm"])
        x = x + (torch.nn.functional.silu(h @ t(L["gate"]).T) * (h @ t(L["up"]).T)) @ t(L["down"]).T
    return (rms(x, w["norm"]) @ t(w["lm_head"]).T).numpy()


def nll_sum(logits, ids):
    lp = torch.log_softmax(torch.tensor(logits), dim=-1).numpy()
    return float(-sum(lp[i, ids[i + 1]] for i in range(len(ids) - 1)))


# ---- safetensors ------------------------------------------------------------------------

def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, off = {}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, _, raw in tensors:
            f.write(raw)


def hf_tensors(cfg, w, kind):
    enc = {"F32": lambda a: a.astype(np.float32).tobytes(),
           "F16": lambda a: a.astype(np.float16).tobytes(),
           "BF16": lambda a: to_bf16_bits(a).tobytes()}[kind]
    out = [("model.embed_tokens.weight", w["embed"]), ("model.norm.weight", w["norm"])]
    if not cfg.get("tied"):
        out.append(("lm_head.weight", w["lm_head"]))
    for i, L in enumerate(w["layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", L["in_norm"]), (p + "post_attention_layernorm.weight", L["post_norm"]),
                (p + "self_attn.q_proj.weight", L["q"]), (p + "self_attn.k_proj.weight", L["k"]),
                (p + "self_attn.v_proj.weight", L["v"]), (p + "self_attn.o_proj.weight", L["o"]),
                (p + "mlp.gate_proj.weight", L["gate"]), (p + "mlp.up_proj.weight", L["up"]),
                (p + "mlp.down_proj.weight", L["down"])]
        if "bq" in L:
            out += [(p + "self_attn.q_proj.bias", L["bq"]), (p + "self_attn.k_proj.bias", L["bk"]),
                    (p + "self_attn.v_proj.bias", L["bv"])]
    return [(n, kind, a.shape, enc(a)) for n, a in out]


def write_hf(folder, cfg, w, kind, shards=1):
    arch = "Qwen2ForCausalLM" if cfg.get("bias") else "LlamaForCausalLM"
    conf = {"architectures": [arch], "model_type": "qwen2" if cfg.get("bias") else "llama",
            "hidden_size": cfg["dim"], "intermediate_size": cfg["ff"], "num_hidden_layers": cfg["layers"],
            "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"],
            "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"], "vocab_size": cfg["vocab"],
            "max_position_embeddings": cfg["ctx"], "tie_word_embeddings": bool(cfg.get("tied")),
            "rope_scaling": cfg.get("scaling"),
            "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[kind]}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(conf, f, indent=1)
    ts = hf_tensors(cfg, w, kind)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), ts)
        return
    per = (len(ts) + shards - 1) // shards
    wmap = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = ts[s * per:(s + 1) * per]
        write_safetensors(os.path.join(folder, name), part)
        wmap.update({n: name for n, _, _, _ in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wmap}, f, indent=1)


# ---- GGUF ---------------------------------------------------------------------------

GGUF_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 8}


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, val):
    if isinstance(val, str):
        return gguf_str(key) + struct.pack("<I", 8) + gguf_str(val)
    if isinstance(val, float):
        return gguf_str(key) + struct.pack("<If", 6, val)
    return gguf_str(key) + struct.pack("<II", 4, val)


def permute_qk(w, n_head):
    """HF (rotate-half) rows -> the adjacent-pair layout llama.cpp's converter writes."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, cfg, w, kind):
    """Returns the weights as the GGUF holds them (dequantized), in HF layout."""
    arch = "qwen2" if cfg.get("bias") else "llama"
    interleaved = arch == "llama"
    tensors, deq = [], {}

    def mat(name, a, key):
        if kind == "F32":
            raw, back = a.astype(np.float32).tobytes(), a.astype(np.float32).astype(np.float64)
        elif kind == "F16":
            raw, back = a.astype(np.float16).tobytes(), a.astype(np.float16).astype(np.float64)
        elif kind == "Q8_0":
            raw, back = quant_q8_0(a)
        else:
            raw, back = quant_q4_0(a)
        tensors.append((name, GGUF_TYPES[kind], a.shape, raw))
        deq[key] = back

    def vec(name, a):
        tensors.append((name, 0, a.shape, a.astype(np.float32).tobytes()))

    hd = cfg["dim"] // cfg["heads"]
    mat("token_embd.weight", w["embed"], "embed")
    vec("output_norm.weight", w["norm"])
    if not cfg.get("tied"):
        mat("output.weight", w["lm_head"], "lm_head")
    layers = []
    for i, L in enumerate(w["layers"]):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", L["in_norm"])
        vec(p + "ffn_norm.weight", L["post_norm"])
        q, k = L["q"], L["k"]
        bq, bk = L.get("bq"), L.get("bk")
        if interleaved:
            q, k = permute_qk(q, cfg["heads"]), permute_qk(k, cfg["kv_heads"])
        for n, a in (("attn_q", q), ("attn_k", k), ("attn_v", L["v"]), ("attn_output", L["o"]),
                     ("ffn_gate", L["gate"]), ("ffn_up", L["up"]), ("ffn_down", L["down"])):
            mat(p + n + ".weight", a, f"{i}.{n}")
        if "bq" in L:
            vec(p + "attn_q.bias", bq)
            vec(p + "attn_k.bias", bk)
            vec(p + "attn_v.bias", L["bv"])
        layers.append(i)
    sc = cfg.get("scaling")
    kv = [("general.architecture", arch), ("general.alignment", 32), ("general.name", "kiln golden"),
          (f"{arch}.context_length", cfg["ctx"]), (f"{arch}.embedding_length", cfg["dim"]),
          (f"{arch}.block_count", cfg["layers"]), (f"{arch}.feed_forward_length", cfg["ff"]),
          (f"{arch}.attention.head_count", cfg["heads"]), (f"{arch}.attention.head_count_kv", cfg["kv_heads"]),
          (f"{arch}.rope.freq_base", float(cfg["theta"])),
          (f"{arch}.attention.layer_norm_rms_epsilon", float(cfg["eps"])),
          (f"{arch}.rope.dimension_count", hd), (f"{arch}.vocab_size", cfg["vocab"])]
    if sc and sc["rope_type"] == "linear":
        kv += [(f"{arch}.rope.scaling.type", "linear"), (f"{arch}.rope.scaling.factor", float(sc["factor"]))]
    if sc and sc["rope_type"] == "llama3":
        # llama.cpp stores llama3 scaling as per-frequency divisors in rope_freqs.weight
        base = inv_freq(dict(cfg, scaling=None))
        vec("rope_freqs.weight", base / inv_freq(cfg))
    # data section
    blobs, infos, off = [], b"", 0
    for name, ty, shape, raw in tensors:
        ne = list(reversed(shape))
        infos += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", ty, off)
        pad = -len(raw) % 32
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(gguf_kv(k, v) for k, v in kv) + infos
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))
    # the weights kiln sees, back in HF layout for the reference
    out = dict(w)
    out["embed"] = deq["embed"]
    out["lm_head"] = deq["embed"] if cfg.get("tied") else deq["lm_head"]
    out["layers"] = []
    for i, L in enumerate(w["layers"]):
        L2 = dict(L)
        for n, key in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
                       ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down")):
            L2[n] = deq[f"{i}.{key}"]
        out["layers"].append(L2)
    return out, interleaved


def unpermute_qk(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


# ---- cases --------------------------------------------------------------------------

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}
LINEAR = {"rope_type": "linear", "factor": 2.0}

# name, file kind, storage type, config changes, tolerance (relative max error of the logits)
CASES = [
    ("hf_llama_f32", "hf", "F32", dict(scaling=LLAMA3), 1e-4),
    ("hf_llama_f16", "hf", "F16", dict(scaling=LINEAR, tied=True), 1e-4),
    ("hf_llama_bf16", "hf", "BF16", dict(kv_heads=2, shards=2), 1e-4),
    ("hf_qwen2_f32", "hf", "F32", dict(bias=True, theta=1e6, kv_heads=2), 1e-4),
    ("gguf_llama_f32", "gguf", "F32", dict(scaling=LLAMA3), 1e-4),
    ("gguf_llama_f16", "gguf", "F16", dict(scaling=LINEAR, tied=True), 1e-4),
    ("gguf_llama_q8_0", "gguf", "Q8_0", dict(kv_heads=2), 3e-2),
    ("gguf_llama_q4_0", "gguf", "Q4_0", dict(), 3e-2),
    ("gguf_qwen2_f32", "gguf", "F32", dict(bias=True, theta=1e6, kv_heads=2), 1e-4),
]


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for seed, (name, kind, ty, changes, tol) in enumerate(CASES):
        cfg = dict(BASE, **changes)
        folder = os.path.join(OUT, name)
        os.makedirs(folder)
        w = make_weights(cfg, 1000 + seed)
        if kind == "hf":
            # every tensor of an f16/bf16 checkpoint is stored in that type, norms included:
            # the reference uses exactly the stored values
            rnd = {"F32": lambda a: a,
                   "F16": lambda a: a.astype(np.float16).astype(np.float64),
                   "BF16": lambda a: bf16_bits_to_f64(to_bf16_bits(a))}[ty]
            w = map_matrices(w, rnd)
            w["norm"] = rnd(w["norm"])
            for L in w["layers"]:
                for k in ("in_norm", "post_norm", "bq", "bk", "bv"):
                    if k in L:
                        L[k] = rnd(L[k])
            write_hf(folder, cfg, w, ty, cfg.get("shards", 1))
            ref_w, path = w, name
        else:
            ref_w, interleaved = write_gguf(os.path.join(folder, "model.gguf"), cfg, w, ty)
            if interleaved:
                # The file's q/k rows are permuted; the HF-layout reference must undo it.
                for L in ref_w["layers"]:
                    L["q"] = unpermute_qk(L["q"], cfg["heads"])
                    L["k"] = unpermute_qk(L["k"], cfg["kv_heads"])
                # Proof of the convention kiln follows: permuted weights with adjacent-pair
                # rope give the same logits as HF weights with rotate-half rope.
                perm = dict(ref_w, layers=[dict(L, q=permute_qk(L["q"], cfg["heads"]),
                                                k=permute_qk(L["k"], cfg["kv_heads"]))
                                           for L in ref_w["layers"]])
                a, b = forward(cfg, ref_w, IDS), forward(cfg, perm, IDS, interleaved=True)
                assert np.abs(a - b).max() < 1e-9, "permutation / rope layout mismatch"
            path = name + "/model.gguf"
        logits = forward(cfg, ref_w, IDS)
        spread = logits[-1].max() - logits[-1].min()
        assert spread > 1.0, f"{name}: degenerate logits"
        logits[-1].astype("<f4").tofile(os.path.join(folder, "logits.bin"))
        with open(os.path.join(folder, "ids.txt"), "w") as f:
            f.write(" ".join(map(str, IDS)) + "\n")
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump({"model": path, "n_vocab": cfg["vocab"], "tolerance": tol,
                       "nll_sum": nll_sum(logits, IDS)}, f, indent=1)
        print(f"{name}: logits spread {spread:.2f}, nll {nll_sum(logits, IDS):.4f}")


if __name__ == "__main__":
    main()
