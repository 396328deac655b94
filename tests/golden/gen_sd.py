#!/usr/bin/python3
"""Golden references for kiln's Stable Diffusion UNet and VAE.

A float64 PyTorch implementation of diffusers' UNet2DConditionModel (resnet blocks
with the timestep embedding, Transformer2DModel blocks with self- and
cross-attention and GEGLU, down/up sampling, skip connections) and AutoencoderKL
(encoder and decoder, single-head mid-block attention), written from diffusers'
module definitions, on tiny configs. As for gen_clip.py, each case lists its tensors
(diffusers names, shapes, generator scale and offset) in data/sd_<case>/case.json
and the weights come from gen_bert.py's generator, so only the config, the inputs
and the expected outputs are committed.

Outputs (expected.f32): for a UNet case, per stage of the forward pass (conv_in, each
down block, mid, each up block, out) the channels-last activations of every sample,
in that order; for a VAE case, the decoder's stages (conv_in, mid, each up block,
out) for the latents, then the encoder's (conv_in, each down block, mid, out: the
moments before quant_conv, then after quant_conv). Inputs come from the generator
too (names "input.*"), so the test makes them itself.

Run with Debian's interpreter:  /usr/bin/python3 tests/golden/gen_sd.py
"""
import json
import math
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

from gen_bert import fnv1a, hashed
from gen_llama import to_bf16_bits, bf16_bits_to_f64

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

UNET_SD1 = dict(in_channels=4, out_channels=4, block_out_channels=[32, 64, 64], layers_per_block=2,
                down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                cross_attention_dim=48, attention_head_dim=4, norm_num_groups=8, norm_eps=1e-5,
                use_linear_projection=False, flip_sin_to_cos=True, freq_shift=0)
UNET_SD2 = dict(UNET_SD1, block_out_channels=[32, 64], layers_per_block=1,
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=[2, 4],
                use_linear_projection=True, cross_attention_dim=40)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32, 64], layers_per_block=1,
           down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
           norm_num_groups=8, scaling_factor=0.18215)

# name, model, config, weight type, latent (h, w), samples, context tokens, timestep, tolerance
CASES = [
    ("unet_sd1_f32", "unet", UNET_SD1, "F32", (8, 8), 2, 7, 981.0, 1e-4),
    ("unet_sd2_f16", "unet", UNET_SD2, "F16", (6, 10), 1, 5, 1.0, 1e-4),
    ("vae_f32", "vae", VAE, "F32", (6, 4), 1, 0, 0.0, 1e-4),
]


# ---- tensor lists (the shapes diffusers' __init__ gives) ------------------------------

class Specs:
    def __init__(self):
        self.items = []

    def conv(self, name, cin, cout, k):
        self.items.append((name + ".weight", (cout, cin, k, k), 1.0 / math.sqrt(cin * k * k), 0.0))
        self.items.append((name + ".bias", (cout,), 0.1, 0.0))

    def linear(self, name, cin, cout, bias=True):
        self.items.append((name + ".weight", (cout, cin), 1.0 / math.sqrt(cin), 0.0))
        if bias:
            self.items.append((name + ".bias", (cout,), 0.1, 0.0))

    def norm(self, name, c):
        self.items.append((name + ".weight", (c,), 0.2, 1.0))
        self.items.append((name + ".bias", (c,), 0.1, 0.0))


def resnet_specs(s, p, cin, cout, temb):
    s.norm(p + "norm1", cin)
    s.conv(p + "conv1", cin, cout, 3)
    if temb:
        s.linear(p + "time_emb_proj", temb, cout)
    s.norm(p + "norm2", cout)
    s.conv(p + "conv2", cout, cout, 3)
    if cin != cout:
        s.conv(p + "conv_shortcut", cin, cout, 1)


def transformer_specs(s, p, c, ctx, linear_proj):
    s.norm(p + "norm", c)
    (s.linear if linear_proj else lambda n, a, b: s.conv(n, a, b, 1))(p + "proj_in", c, c)
    b = p + "transformer_blocks.0."
    for i, kv in ((1, c), (2, ctx)):
        s.norm(b + "norm%d" % i, c)
        s.linear(b + "attn%d.to_q" % i, c, c, bias=False)
        s.linear(b + "attn%d.to_k" % i, kv, c, bias=False)
        s.linear(b + "attn%d.to_v" % i, kv, c, bias=False)
        s.linear(b + "attn%d.to_out.0" % i, c, c)
    s.norm(b + "norm3", c)
    s.linear(b + "ff.net.0.proj", c, 8 * c)
    s.linear(b + "ff.net.2", 4 * c, c)
    (s.linear if linear_proj else lambda n, a, b: s.conv(n, a, b, 1))(p + "proj_out", c, c)


def unet_specs(cfg):
    s = Specs()
    ch, L = cfg["block_out_channels"], cfg["layers_per_block"]
    temb = 4 * ch[0]
    s.linear("time_embedding.linear_1", ch[0], temb)
    s.linear("time_embedding.linear_2", temb, temb)
    s.conv("conv_in", cfg["in_channels"], ch[0], 3)
    ctx, lin = cfg["cross_attention_dim"], cfg["use_linear_projection"]
    out = ch[0]
    for i, kind in enumerate(cfg["down_block_types"]):
        cin, out = out, ch[i]
        for j in range(L):
            resnet_specs(s, "down_blocks.%d.resnets.%d." % (i, j), cin if j == 0 else out, out, temb)
            if kind.startswith("CrossAttn"):
                transformer_specs(s, "down_blocks.%d.attentions.%d." % (i, j), out, ctx, lin)
        if i < len(ch) - 1:
            s.conv("down_blocks.%d.downsamplers.0.conv" % i, out, out, 3)
    resnet_specs(s, "mid_block.resnets.0.", ch[-1], ch[-1], temb)
    transformer_specs(s, "mid_block.attentions.0.", ch[-1], ctx, lin)
    resnet_specs(s, "mid_block.resnets.1.", ch[-1], ch[-1], temb)
    rev = list(reversed(ch))
    prev = rev[0]
    for i, kind in enumerate(cfg["up_block_types"]):
        out, cin = rev[i], rev[min(i + 1, len(ch) - 1)]
        for j in range(L + 1):
            skip = cin if j == L else out
            resnet_specs(s, "up_blocks.%d.resnets.%d." % (i, j), (prev if j == 0 else out) + skip, out, temb)
            if kind.startswith("CrossAttn"):
                transformer_specs(s, "up_blocks.%d.attentions.%d." % (i, j), out, ctx, lin)
        if i < len(ch) - 1:
            s.conv("up_blocks.%d.upsamplers.0.conv" % i, out, out, 3)
        prev = out
    s.norm("conv_norm_out", ch[0])
    s.conv("conv_out", ch[0], cfg["out_channels"], 3)
    return s.items


def vae_attention_specs(s, p, c):
    s.norm(p + "group_norm", c)
    for n in ("to_q", "to_k", "to_v", "to_out.0"):
        s.linear(p + n, c, c)


def vae_specs(cfg):
    s = Specs()
    ch, L, lat = cfg["block_out_channels"], cfg["layers_per_block"], cfg["latent_channels"]
    s.conv("encoder.conv_in", cfg["in_channels"], ch[0], 3)
    out = ch[0]
    for i in range(len(ch)):
        cin, out = out, ch[i]
        for j in range(L):
            resnet_specs(s, "encoder.down_blocks.%d.resnets.%d." % (i, j), cin if j == 0 else out, out, 0)
        if i < len(ch) - 1:
            s.conv("encoder.down_blocks.%d.downsamplers.0.conv" % i, out, out, 3)
    resnet_specs(s, "encoder.mid_block.resnets.0.", ch[-1], ch[-1], 0)
    vae_attention_specs(s, "encoder.mid_block.attentions.0.", ch[-1])
    resnet_specs(s, "encoder.mid_block.resnets.1.", ch[-1], ch[-1], 0)
    s.norm("encoder.conv_norm_out", ch[-1])
    s.conv("encoder.conv_out", ch[-1], 2 * lat, 3)
    s.conv("quant_conv", 2 * lat, 2 * lat, 1)
    s.conv("post_quant_conv", lat, lat, 1)
    s.conv("decoder.conv_in", lat, ch[-1], 3)
    resnet_specs(s, "decoder.mid_block.resnets.0.", ch[-1], ch[-1], 0)
    vae_attention_specs(s, "decoder.mid_block.attentions.0.", ch[-1])
    resnet_specs(s, "decoder.mid_block.resnets.1.", ch[-1], ch[-1], 0)
    rev = list(reversed(ch))
    out = rev[0]
    for i in range(len(ch)):
        cin, out = out, rev[i]
        for j in range(L + 1):
            resnet_specs(s, "decoder.up_blocks.%d.resnets.%d." % (i, j), cin if j == 0 else out, out, 0)
        if i < len(ch) - 1:
            s.conv("decoder.up_blocks.%d.upsamplers.0.conv" % i, out, out, 3)
    s.norm("decoder.conv_norm_out", ch[0])
    s.conv("decoder.conv_out", ch[0], cfg["out_channels"], 3)
    return s.items


# ---- blocks (NCHW, float64) ----------------------------------------------------------

class Net:
    def __init__(self, t, groups):
        self.t, self.groups = t, groups

    def conv(self, x, name, stride=1, pad=None):
        w = self.t[name + ".weight"]
        k = w.shape[-1]
        if pad is None:
            return F.conv2d(x, w, self.t[name + ".bias"], stride=stride, padding=k // 2)
        return F.conv2d(F.pad(x, pad), w, self.t[name + ".bias"], stride=stride)

    def gn(self, x, name, eps):
        return F.group_norm(x, self.groups, self.t[name + ".weight"], self.t[name + ".bias"], eps)

    def ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.t[name + ".weight"], self.t[name + ".bias"], 1e-5)

    def lin(self, x, name):
        y = x @ self.t[name + ".weight"].T
        b = self.t.get(name + ".bias")
        return y + b if b is not None else y

    def resnet(self, x, p, temb, eps):
        h = self.conv(F.silu(self.gn(x, p + "norm1", eps)), p + "conv1")
        if temb is not None:
            h = h + self.lin(F.silu(temb), p + "time_emb_proj")[:, :, None, None]
        h = self.conv(F.silu(self.gn(h, p + "norm2", eps)), p + "conv2")
        if p + "conv_shortcut.weight" in self.t:
            x = self.conv(x, p + "conv_shortcut")
        return x + h

    def attention(self, x, ctx, p, heads):
        """diffusers' Attention (no biases on q, k, v): x (B, N, C), ctx (B, M, D)."""
        B, N, C = x.shape
        q, k, v = self.lin(x, p + "to_q"), self.lin(ctx, p + "to_k"), self.lin(ctx, p + "to_v")
        sp = lambda a: a.view(B, -1, heads, C // heads).transpose(1, 2)
        a = torch.softmax(sp(q) @ sp(k).transpose(-1, -2) / math.sqrt(C // heads), dim=-1) @ sp(v)
        return self.lin(a.transpose(1, 2).reshape(B, N, C), p + "to_out.0")

    def transformer(self, x, ctx, p, heads, linear_proj):
        B, C, H, W = x.shape
        h = self.gn(x, p + "norm", 1e-6)
        if not linear_proj:
            h = self.conv(h, p + "proj_in")
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        if linear_proj:
            h = self.lin(h, p + "proj_in")
        b = p + "transformer_blocks.0."
        n = self.ln(h, b + "norm1")
        h = self.attention(n, n, b + "attn1.", heads) + h
        h = self.attention(self.ln(h, b + "norm2"), ctx, b + "attn2.", heads) + h
        a, g = self.lin(self.ln(h, b + "norm3"), b + "ff.net.0.proj").chunk(2, dim=-1)
        h = self.lin(a * F.gelu(g), b + "ff.net.2") + h
        if linear_proj:
            h = self.lin(h, p + "proj_out")
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2)
        if not linear_proj:
            h = self.conv(h, p + "proj_out")
        return h + x


def timestep_embedding(t, dim, flip, shift):
    """diffusers' get_timestep_embedding: the frequencies, the products and their sin
    and cos are all float32 there (whatever the model's dtype), so they are here too;
    only the result is widened to float64."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift)
    arg = torch.tensor([t], dtype=torch.float32)[:, None] * torch.exp(exponent)[None]
    emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1).double()
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1) if flip else emb


def unet_forward(cfg, t, x, ctx, timestep):
    net = Net(t, cfg["norm_num_groups"])
    eps, L, ch = cfg["norm_eps"], cfg["layers_per_block"], cfg["block_out_channels"]
    hd = cfg["attention_head_dim"]
    heads = hd if isinstance(hd, list) else [hd] * len(ch)
    lin = cfg["use_linear_projection"]
    B = x.shape[0]
    temb = timestep_embedding(timestep, ch[0], cfg["flip_sin_to_cos"], cfg["freq_shift"]).repeat(B, 1)
    temb = net.lin(F.silu(net.lin(temb, "time_embedding.linear_1")), "time_embedding.linear_2")
    stages = []
    h = net.conv(x, "conv_in")
    stages.append(h)
    skips = [h]
    for i, kind in enumerate(cfg["down_block_types"]):
        for j in range(L):
            h = net.resnet(h, "down_blocks.%d.resnets.%d." % (i, j), temb, eps)
            if kind.startswith("CrossAttn"):
                h = net.transformer(h, ctx, "down_blocks.%d.attentions.%d." % (i, j), heads[i], lin)
            skips.append(h)
        if i < len(ch) - 1:
            h = net.conv(h, "down_blocks.%d.downsamplers.0.conv" % i, stride=2)
            skips.append(h)
        stages.append(h)
    h = net.resnet(h, "mid_block.resnets.0.", temb, eps)
    h = net.transformer(h, ctx, "mid_block.attentions.0.", heads[-1], lin)
    h = net.resnet(h, "mid_block.resnets.1.", temb, eps)
    stages.append(h)
    rheads = list(reversed(heads))
    for i, kind in enumerate(cfg["up_block_types"]):
        for j in range(L + 1):
            h = torch.cat([h, skips.pop()], dim=1)
            h = net.resnet(h, "up_blocks.%d.resnets.%d." % (i, j), temb, eps)
            if kind.startswith("CrossAttn"):
                h = net.transformer(h, ctx, "up_blocks.%d.attentions.%d." % (i, j), rheads[i], lin)
        if i < len(ch) - 1:
            h = net.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), "up_blocks.%d.upsamplers.0.conv" % i)
        stages.append(h)
    h = net.conv(F.silu(net.gn(h, "conv_norm_out", eps)), "conv_out")
    stages.append(h)
    return stages


def vae_decode(cfg, t, z):
    net = Net(t, cfg["norm_num_groups"])
    L, n = cfg["layers_per_block"], len(cfg["block_out_channels"])
    stages = []
    h = net.conv(net.conv(z, "post_quant_conv"), "decoder.conv_in")
    stages.append(h)
    h = net.resnet(h, "decoder.mid_block.resnets.0.", None, 1e-6)
    h = vae_mid_attention(net, h, "decoder.mid_block.attentions.0.")
    h = net.resnet(h, "decoder.mid_block.resnets.1.", None, 1e-6)
    stages.append(h)
    for i in range(n):
        for j in range(L + 1):
            h = net.resnet(h, "decoder.up_blocks.%d.resnets.%d." % (i, j), None, 1e-6)
        if i < n - 1:
            h = net.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), "decoder.up_blocks.%d.upsamplers.0.conv" % i)
        stages.append(h)
    stages.append(net.conv(F.silu(net.gn(h, "decoder.conv_norm_out", 1e-6)), "decoder.conv_out"))
    return stages


def vae_encode(cfg, t, x):
    net = Net(t, cfg["norm_num_groups"])
    L, n = cfg["layers_per_block"], len(cfg["block_out_channels"])
    stages = []
    h = net.conv(x, "encoder.conv_in")
    stages.append(h)
    for i in range(n):
        for j in range(L):
            h = net.resnet(h, "encoder.down_blocks.%d.resnets.%d." % (i, j), None, 1e-6)
        if i < n - 1:  # diffusers pads (0, 1, 0, 1) and convolves with stride 2, no padding
            h = net.conv(h, "encoder.down_blocks.%d.downsamplers.0.conv" % i, stride=2, pad=(0, 1, 0, 1))
        stages.append(h)
    h = net.resnet(h, "encoder.mid_block.resnets.0.", None, 1e-6)
    h = vae_mid_attention(net, h, "encoder.mid_block.attentions.0.")
    h = net.resnet(h, "encoder.mid_block.resnets.1.", None, 1e-6)
    stages.append(h)
    h = net.conv(F.silu(net.gn(h, "encoder.conv_norm_out", 1e-6)), "encoder.conv_out")
    stages.append(h)
    stages.append(net.conv(h, "quant_conv"))
    return stages


def vae_mid_attention(net, x, p):
    """The VAE's Attention: GroupNorm, one head over the pixels, biases on q, k, v, residual.
    diffusers builds it with upcast_softmax, which casts the scores to float32 for the
    softmax whatever the model's dtype, so the softmax is float32 here too."""
    B, C, H, W = x.shape
    h = net.gn(x, p + "group_norm", 1e-6).view(B, C, H * W).transpose(1, 2)
    q, k, v = net.lin(h, p + "to_q"), net.lin(h, p + "to_k"), net.lin(h, p + "to_v")
    a = torch.softmax((q @ k.transpose(-1, -2) / math.sqrt(C)).float(), dim=-1).double() @ v
    return net.lin(a, p + "to_out.0").transpose(1, 2).reshape(B, C, H, W) + x


# ---- cases -----------------------------------------------------------------------------

def stored(a, wtype):
    if wtype == "F16":
        return a.astype(np.float16).astype(np.float64)
    if wtype == "BF16":
        return bf16_bits_to_f64(to_bf16_bits(a)).reshape(a.shape)
    return a.astype(np.float64)


def gen(name, shape, seed, scale=1.0, wtype="F32"):
    a = hashed(fnv1a(name) ^ seed, int(np.prod(shape)), scale, 0.0).reshape(shape)
    return torch.from_numpy(stored(a, wtype))


def nhwc(x):
    return x.permute(0, 2, 3, 1).reshape(-1)


def main():
    for i, (name, model, cfg, wtype, (h, w), B, M, timestep, tol) in enumerate(CASES):
        seed = 3000 + i
        specs = unet_specs(cfg) if model == "unet" else vae_specs(cfg)
        t = {n: torch.from_numpy(stored(hashed(fnv1a(n) ^ seed, int(np.prod(shape)), sc, off).reshape(shape), wtype))
             for n, shape, sc, off in specs}
        inputs = {}
        with torch.no_grad():
            if model == "unet":
                # inputs are made channels-last (what kiln takes) and viewed as NCHW here
                x = gen("input.sample", (B, h, w, cfg["in_channels"]), seed).permute(0, 3, 1, 2)
                ctx = gen("input.context", (B, M, cfg["cross_attention_dim"]), seed)
                inputs = dict(sample=[B, h, w, cfg["in_channels"]], context=[B, M, cfg["cross_attention_dim"]])
                stages = unet_forward(cfg, t, x, ctx, timestep)
            else:
                z = gen("input.latent", (1, h, w, cfg["latent_channels"]), seed).permute(0, 3, 1, 2)
                img = gen("input.image", (1, 13, 10, cfg["in_channels"]), seed).permute(0, 3, 1, 2)  # odd: the pad
                inputs = dict(latent=[1, h, w, cfg["latent_channels"]], image=[1, 13, 10, cfg["in_channels"]])
                stages = vae_decode(cfg, t, z) + vae_encode(cfg, t, img)
        folder = os.path.join(OUT, "sd_" + name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        np.concatenate([nhwc(s).numpy() for s in stages]).astype("<f4").tofile(os.path.join(folder, "expected.f32"))
        case = dict(name=name, model=model, type=wtype, seed=seed, timestep=timestep, tolerance=tol, inputs=inputs,
                    config=cfg, stages=[list(s.permute(0, 2, 3, 1).shape) for s in stages],
                    tensors=[[n, list(s), sc, off] for n, s, sc, off in specs])
        with open(os.path.join(folder, "case.json"), "w") as f:
            json.dump(case, f)
            f.write("\n")
        print("%-14s %-4s %-4s %d stages, %d tensors, max |out| %.3g" % (
            name, model, wtype, len(stages), len(specs), float(stages[-1].abs().max())))


if __name__ == "__main__":
    main()
