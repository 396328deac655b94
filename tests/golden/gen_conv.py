#!/usr/bin/python3
"""Golden references for kiln's image kernels: conv2d and group norm against PyTorch.

Inputs, weights and biases come from integer formulas whose values are exact in f32,
F16 and BF16 (see x_val / w_val / b_val; test_conv.c computes the very same), so only
the outputs are committed. The input is made channels-last (H, W, C) as kiln holds it
and permuted to NCHW for torch; the weight is made as PyTorch's (O, C, kh, kw), the
layout a safetensors file stores and kiln reads as ne = [kw, kh, C, O]; the output is
permuted back to (Ho, Wo, O). torch runs in float64 on the exact values.

Writes data/conv/golden.bin: records of 16 int32 (kind: 0 conv, 1 group norm; H, W, C;
O or groups; kh, kw, stride; pad top, left, bottom, right; weight type 0 F32 / 1 F16 /
2 BF16; has bias; silu; float count) then that many float32 (little-endian).

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_conv.py
"""
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conv", "golden.bin")


def x_val(n, offset=0.0):
    i = np.arange(n, dtype=np.int64)
    return ((i * 7919 + 13) % 2003 - 1001).astype(np.float64) / 512.0 + offset


def w_val(n):
    i = np.arange(n, dtype=np.int64)
    return ((i * 104729 + 7) % 251 - 125).astype(np.float64) / 1024.0


def b_val(n):
    i = np.arange(n, dtype=np.int64)
    return ((i * 31 + 3) % 17 - 8).astype(np.float64) / 16.0


def gn_w(n):
    i = np.arange(n, dtype=np.int64)
    return 1.0 + ((i * 13 + 5) % 9 - 4).astype(np.float64) / 8.0


def gn_b(n):
    i = np.arange(n, dtype=np.int64)
    return ((i * 7 + 1) % 11 - 5).astype(np.float64) / 16.0


# H, W, C, O, kh, kw, stride, (top, left, bottom, right), weight type, bias
CONVS = [
    (6, 5, 5, 7, 3, 3, 1, (1, 1, 1, 1), 0, True),
    (7, 8, 4, 6, 3, 3, 2, (0, 0, 1, 1), 1, True),   # the VAE encoder's downsampling
    (8, 7, 3, 5, 3, 3, 2, (1, 1, 1, 1), 2, False),  # the UNet's downsampling
    (3, 5, 6, 4, 1, 1, 1, (0, 0, 0, 0), 0, True),
    (9, 10, 32, 16, 3, 3, 1, (1, 1, 1, 1), 2, True),
]
# n_pix as H x W, C, groups, silu
NORMS = [(4, 5, 64, 32, False), (3, 3, 12, 3, True), (4, 4, 320, 32, True)]


def conv_case(H, W, C, O, kh, kw, stride, pad, wtype, bias):
    x = torch.from_numpy(x_val(H * W * C).reshape(H, W, C)).permute(2, 0, 1).unsqueeze(0)
    w = torch.from_numpy(w_val(O * C * kh * kw).reshape(O, C, kh, kw))
    b = torch.from_numpy(b_val(O)) if bias else None
    top, left, bottom, right = pad
    y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride)
    return y[0].permute(1, 2, 0).contiguous().numpy()


def norm_case(H, W, C, groups, silu):
    x = torch.from_numpy(x_val(H * W * C, 3.0).reshape(H, W, C)).permute(2, 0, 1).unsqueeze(0)
    y = F.group_norm(x, groups, torch.from_numpy(gn_w(C)), torch.from_numpy(gn_b(C)), eps=1e-5)
    if silu:
        y = F.silu(y)
    return y[0].permute(1, 2, 0).contiguous().numpy()


def main():
    # the formulas' values are exact in every weight type kiln is given
    w = w_val(100000).astype(np.float32)
    assert np.array_equal(w.astype(np.float16).astype(np.float32), w)
    assert np.array_equal((w.view(np.uint32) & 0xFFFF0000).view(np.float32), w)
    out = bytearray()
    for H, W, C, O, kh, kw, stride, pad, wtype, bias in CONVS:
        y = conv_case(H, W, C, O, kh, kw, stride, pad, wtype, bias).astype("<f4")
        out += struct.pack("<16i", 0, H, W, C, O, kh, kw, stride, *pad, wtype, int(bias), 0, y.size)
        out += y.tobytes()
    for H, W, C, groups, silu in NORMS:
        y = norm_case(H, W, C, groups, silu).astype("<f4")
        out += struct.pack("<16i", 1, H, W, C, groups, 0, 0, 0, 0, 0, 0, 0, 0, 0, int(silu), y.size)
        out += y.tobytes()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(out)
    print("wrote %s (%d bytes)" % (OUT, len(out)))


if __name__ == "__main__":
    main()
