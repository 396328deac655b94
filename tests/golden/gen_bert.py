#!/usr/bin/python3
"""Golden references for kiln's BERT encoders (sentence embeddings).

The weights of each case come from a counter-based generator (splitmix64 of a seed
and the element index; the seed is the FNV-1a hash of the tensor's Hugging Face name
xor the case's seed), so test_golden_bert.c makes the very same weights itself and
only the config, the inputs and the expected outputs are committed: the cases include
the all-MiniLM-L6 shape, whose weights (90 MB in F32) are too big to keep in git.

For each case this writes data/bert_<name>/case.json (config, file kind, weight type,
pooling, inputs) and expected.f32: for every input, the last layer's token states
(len x hidden) and then the pooled sentence vector (L2-normalized when the case says
so), from a float64 PyTorch implementation of Hugging Face's BertModel forward pass
and sentence-transformers' Pooling / Normalize modules. The inputs run as one padded
batch with an attention mask, as transformers runs them; the script checks that each
input alone gives the same states.

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_bert.py
"""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch

from gen_llama import quant_q8_0, to_bf16_bits, bf16_bits_to_f64

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

MINILM = dict(hidden=384, layers=6, heads=12, ff=1536, vocab=1000, positions=512, types=2)
SMALL = dict(hidden=64, layers=2, heads=4, ff=128, vocab=300, positions=64, types=2)

# name, file kind, weight type, shape, pooling, extra options, tolerance (relative max error)
CASES = [
    ("hf_minilm_f32", "hf", "F32", MINILM, "mean", dict(normalize=True, max_seq_length=256), 1e-4),
    ("gguf_minilm_f16", "gguf", "F16", MINILM, "last", {}, 1e-4),
    ("gguf_minilm_q8_0", "gguf", "Q8_0", MINILM, "mean", {}, 3e-2),
    ("hf_bert_bf16", "hf", "BF16", SMALL, "max", dict(prefix="bert.", act="gelu_new"), 1e-4),
    ("gguf_bert_f32", "gguf", "F32", SMALL, "cls", dict(eps=1e-5), 1e-4),
]

LENGTHS = [16, 5, 11]


# ---- the weight generator (mirrored in test_golden_bert.c) ----------------------------

M64 = (1 << 64) - 1


def fnv1a(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def hashed(seed, n, scale, offset):
    """offset + scale * u, u uniform in [-1, 1): splitmix64(seed + i * golden) >> 40."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0) - 0.5
    return (offset + u * (2.0 * scale)).astype(np.float32)


def tensor_specs(cfg):
    """(HF name, shape, scale, offset) of every tensor, in a fixed order."""
    d, ff = cfg["hidden"], cfg["ff"]
    specs = [("embeddings.word_embeddings.weight", (cfg["vocab"], d), 0.5, 0.0),
             ("embeddings.position_embeddings.weight", (cfg["positions"], d), 0.2, 0.0),
             ("embeddings.token_type_embeddings.weight", (cfg["types"], d), 0.2, 0.0),
             ("embeddings.LayerNorm.weight", (d,), 0.2, 1.0),
             ("embeddings.LayerNorm.bias", (d,), 0.1, 0.0)]
    for l in range(cfg["layers"]):
        p = "encoder.layer.%d." % l
        for name, rows, cols in (("attention.self.query", d, d), ("attention.self.key", d, d),
                                 ("attention.self.value", d, d), ("attention.output.dense", d, d),
                                 ("intermediate.dense", ff, d), ("output.dense", d, ff)):
            specs.append((p + name + ".weight", (rows, cols), 1.75 / math.sqrt(cols), 0.0))
            specs.append((p + name + ".bias", (rows,), 0.1, 0.0))
            if name in ("attention.output.dense", "output.dense"):
                ln = p + name.replace("dense", "LayerNorm")
                specs.append((ln + ".weight", (d,), 0.2, 1.0))
                specs.append((ln + ".bias", (d,), 0.1, 0.0))
    return specs


def make_weights(cfg, seed):
    return {name: hashed(fnv1a(name) ^ seed, int(np.prod(shape)), scale, off).reshape(shape)
            for name, shape, scale, off in tensor_specs(cfg)}


def stored(w, kind, wtype):
    """The values the file holds (what kiln reads), as float64."""
    out = {}
    for name, a in w.items():
        if wtype == "F16" and (kind == "hf" or a.ndim == 2):
            out[name] = a.astype(np.float16).astype(np.float64)
        elif wtype == "BF16":  # Hugging Face folders store every tensor in the model's dtype
            out[name] = bf16_bits_to_f64(to_bf16_bits(a)).reshape(a.shape)
        elif wtype == "Q8_0" and a.ndim == 2 and "position" not in name and "token_type" not in name:
            out[name] = quant_q8_0(a)[1]
        else:
            out[name] = a.astype(np.float64)
    return out


# ---- reference forward ------------------------------------------------------------------

def gelu(x, tanh_form):
    if tanh_form:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def forward(cfg, w, batch, eps, tanh_form):
    """BertModel on a padded batch (B, L) of ids with its attention mask; (B, L, hidden)."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    B, L = len(batch), max(len(s) for s in batch)
    ids = torch.zeros(B, L, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.float64)
    for i, s in enumerate(batch):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    d, H = cfg["hidden"], cfg["heads"]
    hd = d // H

    def ln(x, name):
        return torch.nn.functional.layer_norm(x, (d,), t[name + ".weight"], t[name + ".bias"], eps)

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:L][None] + \
        t["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    bias = (1.0 - mask)[:, None, None, :] * -1e30  # padded keys get no weight
    for l in range(cfg["layers"]):
        p = "encoder.layer.%d." % l
        q, k, v = (lin(x, p + "attention.self." + n).view(B, L, H, hd).transpose(1, 2)
                   for n in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1) @ v
        att = att.transpose(1, 2).reshape(B, L, d)
        x = ln(x + lin(att, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = gelu(lin(x, p + "intermediate.dense"), tanh_form)
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x


def pool(states, mode, normalize):
    """sentence-transformers' Pooling (one mode) and Normalize on one input's states."""
    if mode == "mean":
        v = states.mean(0)
    elif mode == "cls":
        v = states[0]
    elif mode == "last":
        v = states[-1]
    else:
        v = states.max(0).values
    return v / max(float(v.norm()), 1e-12) if normalize else v


# ---- cases ---------------------------------------------------------------------------------

def inputs(cfg, seed):
    g = np.random.default_rng(seed)
    return [[1] + [int(i) for i in g.integers(3, cfg["vocab"], n - 2)] + [2] for n in LENGTHS]


def main():
    for i, (name, kind, wtype, shape, pooling, extra, tol) in enumerate(CASES):
        seed = 1000 + i
        cfg = dict(shape)
        eps = extra.get("eps", 1e-12)
        act = extra.get("act", "gelu")
        # GGUF files carry no Normalize module; kiln (like llama.cpp) L2-normalizes their pooled output
        normalize = extra.get("normalize", False) or kind == "gguf"
        w = stored(make_weights(cfg, seed), kind, wtype)
        ins = inputs(cfg, seed)
        with torch.no_grad():
            states = forward(cfg, w, ins, eps, act != "gelu")
            for j, s in enumerate(ins):
                alone = forward(cfg, w, [s], eps, act != "gelu")[0]
                assert torch.allclose(alone, states[j, :len(s)], rtol=0, atol=1e-10), "padding changed the states"
        folder = os.path.join(OUT, "bert_" + name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        out = []
        for j, s in enumerate(ins):
            st = states[j, :len(s)]
            out.append(st.reshape(-1))
            out.append(pool(st, pooling, normalize))
        np.concatenate([o.numpy() for o in out]).astype("<f4").tofile(os.path.join(folder, "expected.f32"))
        case = dict(name=name, kind=kind, type=wtype, seed=seed, pooling=pooling, normalize=normalize,
                    eps=eps, act=act, prefix=extra.get("prefix", ""),
                    max_seq_length=extra.get("max_seq_length", 0), tolerance=tol, inputs=ins, **cfg)
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(case, f, indent=1)
            f.write("\n")
        print("%-18s %s %-4s pooling %-4s normalize %d  %s" % (name, kind, wtype, pooling, normalize,
                                                            " ".join(str(len(s)) for s in ins)))


if __name__ == "__main__":
    main()
