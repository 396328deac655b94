#!/usr/bin/python3
"""Golden references for kiln's CLIP text encoder (Stable Diffusion's conditioning).

Each case lists its tensors (name as the file stores it, shape, scale, offset) in
data/clip_<name>/case.json; both this script and test_golden_clip.c make their values
with gen_bert.py's counter-based generator (splitmix64 of the FNV-1a hash of the name
xor the case's seed), so only the case, the ids and the expected outputs are
committed. The test writes the tensors into the file kind the case names (a diffusers
text_encoder/ folder with config.json, or a single-file checkpoint whose config kiln
reads from the shapes) in F32, F16 or BF16, loads it and compares.

The reference is a float64 PyTorch implementation of Hugging Face's CLIPTextModel
(pre-LN layers, causal attention, quick_gelu or gelu, final LayerNorm, pooled state at
the eos token) and of OpenCLIP's text tower (fused in_proj, x @ text_projection), on
the values the file holds (F16 / BF16 rounding applied first). expected.f32 holds per
case: for each skip in case["skips"], the (n_seq, len, hidden) states; then the
(n_seq, proj or hidden) pooled vectors.

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_clip.py
"""
import json
import math
import os
import shutil

import numpy as np
import torch

from gen_bert import fnv1a, hashed
from gen_llama import to_bf16_bits, bf16_bits_to_f64

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# name, file kind, weight type, naming, prefix, config, skips, n_seq, len, final_norm, tolerance
SD1 = dict(hidden=64, layers=3, heads=4, ff=256, vocab=1000, positions=77, act="quick_gelu", eos=2, proj=0)
SD1_SINGLE = dict(hidden=128, layers=3, heads=2, ff=512, vocab=1000, positions=77, act="quick_gelu", eos=999, proj=0)
SD2_SINGLE = dict(hidden=128, layers=4, heads=2, ff=512, vocab=800, positions=77, act="gelu", eos=799, proj=96)
CASES = [
    ("hf_sd1_f32", "folder", "F32", "hf", "", SD1, [1, 2], 2, 77, True, 1e-4),
    ("ldm_sd1_f16", "single", "F16", "hf", "cond_stage_model.transformer.", SD1_SINGLE, [1, 3], 3, 20, True, 1e-4),
    ("openclip_sd2_bf16", "single", "BF16", "openclip", "cond_stage_model.model.", SD2_SINGLE, [2], 2, 77, False,
     1e-4),
]


def tensor_specs(cfg, naming):
    """(name without prefix, shape, scale, offset) of every tensor, in file order."""
    d, ff, V, P = cfg["hidden"], cfg["ff"], cfg["vocab"], cfg["positions"]
    mat = lambda rows, cols: ((rows, cols), 1.75 / math.sqrt(cols), 0.0)
    vec = lambda n, scale=0.1, off=0.0: ((n,), scale, off)
    specs = []
    if naming == "hf":
        specs += [("text_model.embeddings.token_embedding.weight", (V, d), 0.5, 0.0),
                  ("text_model.embeddings.position_embedding.weight", (P, d), 0.2, 0.0)]
        for l in range(cfg["layers"]):
            p = "text_model.encoder.layers.%d." % l
            specs += [(p + "layer_norm1.weight",) + vec(d, 0.2, 1.0), (p + "layer_norm1.bias",) + vec(d)]
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                specs += [(p + "self_attn.%s.weight" % n,) + mat(d, d), (p + "self_attn.%s.bias" % n,) + vec(d)]
            specs += [(p + "layer_norm2.weight",) + vec(d, 0.2, 1.0), (p + "layer_norm2.bias",) + vec(d),
                      (p + "mlp.fc1.weight",) + mat(ff, d), (p + "mlp.fc1.bias",) + vec(ff),
                      (p + "mlp.fc2.weight",) + mat(d, ff), (p + "mlp.fc2.bias",) + vec(d)]
        specs += [("text_model.final_layer_norm.weight",) + vec(d, 0.2, 1.0),
                  ("text_model.final_layer_norm.bias",) + vec(d)]
        if cfg["proj"]:
            specs.append(("text_projection.weight",) + mat(cfg["proj"], d))
    else:
        specs += [("token_embedding.weight", (V, d), 0.5, 0.0), ("positional_embedding", (P, d), 0.2, 0.0)]
        for l in range(cfg["layers"]):
            p = "transformer.resblocks.%d." % l
            specs += [(p + "ln_1.weight",) + vec(d, 0.2, 1.0), (p + "ln_1.bias",) + vec(d),
                      (p + "attn.in_proj_weight",) + mat(3 * d, d), (p + "attn.in_proj_bias",) + vec(3 * d),
                      (p + "attn.out_proj.weight",) + mat(d, d), (p + "attn.out_proj.bias",) + vec(d),
                      (p + "ln_2.weight",) + vec(d, 0.2, 1.0), (p + "ln_2.bias",) + vec(d),
                      (p + "mlp.c_fc.weight",) + mat(ff, d), (p + "mlp.c_fc.bias",) + vec(ff),
                      (p + "mlp.c_proj.weight",) + mat(d, ff), (p + "mlp.c_proj.bias",) + vec(d)]
        specs += [("ln_final.weight",) + vec(d, 0.2, 1.0), ("ln_final.bias",) + vec(d)]
        if cfg["proj"]:  # OpenCLIP multiplies x @ P: P is (hidden, proj)
            specs.append(("text_projection", (d, cfg["proj"]), 1.75 / math.sqrt(d), 0.0))
    return specs


def stored(a, wtype):
    if wtype == "F16":
        return a.astype(np.float16).astype(np.float64)
    if wtype == "BF16":
        return bf16_bits_to_f64(to_bf16_bits(a)).reshape(a.shape)
    return a.astype(np.float64)


def make_weights(cfg, naming, prefix, seed, wtype):
    w = {}
    for name, shape, scale, off in tensor_specs(cfg, naming):
        a = hashed(fnv1a(prefix + name) ^ seed, int(np.prod(shape)), scale, off).reshape(shape)
        w[name] = torch.from_numpy(stored(a, wtype))
    return w


def hf_view(w, cfg, naming):
    """OpenCLIP's tensors under Hugging Face's names (in_proj split, projection transposed)."""
    if naming == "hf":
        return w
    d = cfg["hidden"]
    v = {"text_model.embeddings.token_embedding.weight": w["token_embedding.weight"],
         "text_model.embeddings.position_embedding.weight": w["positional_embedding"],
         "text_model.final_layer_norm.weight": w["ln_final.weight"],
         "text_model.final_layer_norm.bias": w["ln_final.bias"]}
    for l in range(cfg["layers"]):
        o, p = "transformer.resblocks.%d." % l, "text_model.encoder.layers.%d." % l
        for i, n in enumerate(("q_proj", "k_proj", "v_proj")):
            v[p + "self_attn.%s.weight" % n] = w[o + "attn.in_proj_weight"][i * d:(i + 1) * d]
            v[p + "self_attn.%s.bias" % n] = w[o + "attn.in_proj_bias"][i * d:(i + 1) * d]
        pairs = (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                 ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"))
        for a, b in pairs:
            v[p + b + ".weight"] = w[o + a + ".weight"]
            v[p + b + ".bias"] = w[o + a + ".bias"]
    if cfg["proj"]:
        v["text_projection.weight"] = w["text_projection"].T
    return v


def forward(cfg, t, ids):
    """CLIPTextModel: all hidden states (embeddings, then each layer's), and the pooled state."""
    B, L = ids.shape
    d, H = cfg["hidden"], cfg["heads"]
    hd = d // H

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (d,), t[name + ".weight"], t[name + ".bias"], 1e-5)

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    def act(x):
        if cfg["act"] == "quick_gelu":
            return x * torch.sigmoid(1.702 * x)
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    x = t["text_model.embeddings.token_embedding.weight"][ids] + \
        t["text_model.embeddings.position_embedding.weight"][:L][None]
    causal = torch.triu(torch.full((L, L), -math.inf, dtype=torch.float64), diagonal=1)
    states = [x]
    for l in range(cfg["layers"]):
        p = "text_model.encoder.layers.%d." % l
        h = ln(x, p + "layer_norm1")
        q, k, v = (lin(h, p + "self_attn." + n).view(B, L, H, hd).transpose(1, 2)
                   for n in ("q_proj", "k_proj", "v_proj"))
        att = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5 + causal, dim=-1) @ v
        x = x + lin(att.transpose(1, 2).reshape(B, L, d), p + "self_attn.out_proj")
        x = x + lin(act(lin(ln(x, p + "layer_norm2"), p + "mlp.fc1")), p + "mlp.fc2")
        states.append(x)
    last = ln(x, "text_model.final_layer_norm")
    if cfg["eos"] == 2:  # transformers' legacy rule: the highest id is the end-of-text token
        pos = ids.argmax(dim=-1)
    else:
        pos = (ids == cfg["eos"]).int().argmax(dim=-1)
    pooled = last[torch.arange(B), pos]
    if cfg["proj"]:
        pooled = pooled @ t["text_projection.weight"].T
    return states, pooled


def make_ids(cfg, n_seq, L, seed):
    """SD-style windows: start token, a few words, end token, then padding (the end
    token for SD 1.x, id 0 for SD 2.x), with differing text lengths."""
    g = np.random.default_rng(seed)
    V = cfg["vocab"]
    start, end = V - 2, (V - 1 if cfg["eos"] != 2 else V - 1)
    pad = end if cfg["act"] == "quick_gelu" else 0
    rows = []
    for s in range(n_seq):
        n = min(L - 2, 3 + 7 * s)
        row = [start] + [int(i) for i in g.integers(1, V - 2, n)] + [end]
        rows.append(row + [pad] * (L - len(row)))
    return torch.tensor(rows, dtype=torch.long)


def main():
    for i, (name, kind, wtype, naming, prefix, cfg, skips, n_seq, L, final_norm, tol) in enumerate(CASES):
        seed = 2000 + i
        w = make_weights(cfg, naming, prefix, seed, wtype)
        ids = make_ids(cfg, n_seq, L, seed)
        with torch.no_grad():
            states, pooled = forward(cfg, hf_view(w, cfg, naming), ids)
            for s in range(n_seq):  # each sequence only sees itself
                alone, _ = forward(cfg, hf_view(w, cfg, naming), ids[s:s + 1])
                assert torch.allclose(alone[-1][0], states[-1][s], rtol=0, atol=1e-10)
        t = hf_view(w, cfg, naming)
        out = []
        for skip in skips:
            h = states[cfg["layers"] + 1 - skip]
            if final_norm:
                h = torch.nn.functional.layer_norm(h, (cfg["hidden"],), t["text_model.final_layer_norm.weight"],
                                                   t["text_model.final_layer_norm.bias"], 1e-5)
            out.append(h.reshape(-1))
        out.append(pooled.reshape(-1))
        folder = os.path.join(OUT, "clip_" + name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        np.concatenate([o.numpy() for o in out]).astype("<f4").tofile(os.path.join(folder, "expected.f32"))
        case = dict(name=name, kind=kind, type=wtype, naming=naming, prefix=prefix, seed=seed, skips=skips,
                    n_seq=n_seq, len=L, final_norm=final_norm, tolerance=tol, ids=ids.reshape(-1).tolist(),
                    tensors=[[n, list(s), sc, off] for n, s, sc, off in tensor_specs(cfg, naming)], **cfg)
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(case, f)
            f.write("\n")
        print("%-18s %-6s %-4s %-8s skips %s, %d x %d tokens" % (name, kind, wtype, naming, skips, n_seq, L))


if __name__ == "__main__":
    main()
