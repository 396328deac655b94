#!/usr/bin/python3
"""The fixture of test_sd_single.c: LDM single-file names and shapes -> diffusers' names.

For a tiny-channel UNet of SD 1.x's structure (4 blocks, 2 layers, attentions in the
first three down blocks, 1x1-conv proj_in/out, 8 heads), one of SD 2.x's (linear
projections, 64-wide heads) and an SD VAE (4 levels, 2 resnets each), it lists every
tensor under its diffusers name and shape (gen_sd.py's unet_specs / vae_specs, which
check_sd against diffusers' state_dict confirmed) and the name and shape the original
LDM checkpoints (CompVis / Stability) give it, from a table written here, together
with the configs kiln must infer, and the LDM names of gen_sd.py's unet_sd1_f32 and
vae_f32 cases (for test_golden_sd_single.c). Writes data/sd_single/cases.json.

    /usr/bin/python3 tests/golden/gen_sd_single.py
        writes the fixture; needs only numpy and torch (through gen_sd.py).

    /usr/bin/python3 tests/golden/gen_sd_single.py --diffusers SRC [--stubs DIR]
        also proves the table against diffusers itself: SRC is a directory from which
        `import diffusers` works (a checkout's src/), DIR one put first on sys.path
        before it (import shims, e.g. for an old torch; a module _magicstubs there is
        imported when present). It builds diffusers' UNet2DConditionModel and
        AutoencoderKL at these configs and checks their state_dict is the listed one,
        runs diffusers' convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint on the
        LDM names and checks they give back exactly the diffusers names and shapes, and
        runs create_unet_diffusers_config_from_ldm / create_vae_diffusers_config_from_ldm
        on the equivalent LDM yaml configs (v1-inference / v2-inference with these
        widths) and checks their block types, layers, widths, heads and cross-attention
        width are the ones kiln infers from the shapes.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_sd  # noqa: E402

OUT = os.path.join(HERE, "data", "sd_single", "cases.json")

CA_DOWN, DOWN, CA_UP, UP = "CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"
UNET_SD1 = dict(in_channels=4, out_channels=4, block_out_channels=[32, 64, 128, 128], layers_per_block=2,
                down_block_types=[CA_DOWN] * 3 + [DOWN], up_block_types=[UP] + [CA_UP] * 3,
                cross_attention_dim=48, attention_head_dim=8, norm_num_groups=32, use_linear_projection=False)
UNET_SD2 = dict(UNET_SD1, block_out_channels=[64, 128, 256, 256], attention_head_dim=[1, 2, 4, 4],
                use_linear_projection=True, cross_attention_dim=64)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32, 64, 128, 128],
           layers_per_block=2, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           norm_num_groups=32)

# The LDM yaml configs (unet_config / first_stage_config params) these stand for.
LDM_SD1 = dict(in_channels=4, out_channels=4, model_channels=32, attention_resolutions=[4, 2, 1],
               num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, transformer_depth=1, context_dim=48)
LDM_SD2 = dict(in_channels=4, out_channels=4, model_channels=64, attention_resolutions=[4, 2, 1],
               num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_head_channels=64, use_linear_in_transformer=True,
               transformer_depth=1, context_dim=64)
LDM_VAE = dict(z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2, 4, 4],
               num_res_blocks=2, attn_resolutions=[], dropout=0.0)

UNET_PREFIX, VAE_PREFIX = "model.diffusion_model.", "first_stage_model."


# ---- diffusers -> LDM names ----------------------------------------------------------

UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_ldm(name, cfg):
    L = cfg["layers_per_block"]
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    stem, _, leaf = name.rpartition(".")
    if stem in fixed:
        return fixed[stem] + "." + leaf

    def resnet(rest):
        part, _, tail = rest.partition(".")
        return UNET_RESNET[part] + "." + tail

    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)$", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            return "input_blocks.%d.0.op.%s" % (1 + i * (L + 1) + L, rest.split(".", 1)[1])
        k = 1 + i * (L + 1) + j
        return "input_blocks.%d.0.%s" % (k, resnet(rest)) if kind == "resnets" else "input_blocks.%d.1.%s" % (k, rest)
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", name)
    if m:
        if m[1] == "resnets":
            return "middle_block.%d.%s" % (2 * int(m[2]), resnet(m[3]))
        return "middle_block.1." + m[3]
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)$", name)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
            return "output_blocks.%d.%d.%s" % (i * (L + 1) + L, 2 if has_attn else 1, rest)
        k = i * (L + 1) + j
        return "output_blocks.%d.0.%s" % (k, resnet(rest)) if kind == "resnets" else "output_blocks.%d.1.%s" % (k, rest)
    raise KeyError(name)


def vae_ldm(name, cfg):
    """The LDM name, and whether the weight is a 1x1 conv there (mid attention)."""
    n = len(cfg["block_out_channels"])
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)$", name)
    if m:
        return "%s.mid.attn_1.%s.%s" % (m[1], VAE_ATTN[m[2]], m[3]), m[2] != "group_norm" and m[3] == "weight"
    name = name.replace("conv_shortcut", "nin_shortcut")
    m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$", name)
    if m:
        return "%s.mid.block_%d.%s" % (m[1], int(m[2]) + 1, m[3]), False
    m = re.match(r"encoder\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.*)$", name)
    if m:
        if m[2] == "downsamplers":
            return "encoder.down.%s.downsample.%s" % (m[1], m[4]), False
        return "encoder.down.%s.block.%s.%s" % (m[1], m[3], m[4]), False
    m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", name)
    if m:
        level = n - 1 - int(m[1])
        if m[2] == "upsamplers":
            return "decoder.up.%d.upsample.%s" % (level, m[4]), False
        return "decoder.up.%d.block.%s.%s" % (level, m[3], m[4]), False
    return name.replace("conv_norm_out", "norm_out"), False


def unet_entries(cfg):
    return [(unet_ldm(n, cfg), n, list(s), list(s)) for n, s, _, _ in gen_sd.unet_specs(cfg)]


def vae_entries(cfg):
    out = []
    for n, s, _, _ in gen_sd.vae_specs(cfg):
        ldm, conv = vae_ldm(n, cfg)
        out.append((ldm, n, list(s) + [1, 1] if conv else list(s), list(s)))
    return out


# ---- what kiln infers -------------------------------------------------------------------

def kiln_unet_config(cfg, sd2):
    ch = cfg["block_out_channels"]
    return dict(in_channels=cfg["in_channels"], out_channels=cfg["out_channels"], n_blocks=len(ch), channels=ch,
                down_attn=[t.startswith("CrossAttn") for t in cfg["down_block_types"]],
                up_attn=[t.startswith("CrossAttn") for t in cfg["up_block_types"]],
                heads=[c // 64 for c in ch] if sd2 else [8] * len(ch), transformer_layers=[1] * len(ch),
                layers_per_block=cfg["layers_per_block"], cross_attention_dim=cfg["cross_attention_dim"], groups=32,
                sample_size=96 if sd2 and cfg["in_channels"] != 9 else 64, linear_projection=sd2)


def kiln_vae_config(cfg):
    return dict(in_channels=cfg["in_channels"], out_channels=cfg["out_channels"],
                latent_channels=cfg["latent_channels"], n_blocks=len(cfg["block_out_channels"]),
                channels=cfg["block_out_channels"], layers_per_block=cfg["layers_per_block"], groups=32)


# Tensors a single file holds besides the UNet and VAE (must be ignored).
EXTRA_SD1 = [("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", [77, 48]),
             ("cond_stage_model.transformer.text_model.final_layer_norm.weight", [48]),
             ("model_ema.decay", []), ("model_ema.num_updates", []),
             ("model_ema.diffusion_modelinput_blocks00weight", [32, 4, 3, 3]),
             ("alphas_cumprod", [1000]), ("betas", [1000]), ("logvar", [1000])]
EXTRA_SD2 = [("cond_stage_model.model.token_embedding.weight", [1000, 64]),
             ("cond_stage_model.model.positional_embedding", [77, 64]), ("alphas_cumprod", [1000])]


def compact(entries):
    """[ldm, diffusers, shape], or [ldm, diffusers, ldm shape, diffusers shape] when they differ."""
    return [[l, d, ls] if ls == ds else [l, d, ls, ds] for l, d, ls, ds in entries]


def golden_names():
    """LDM names for gen_sd.py's golden cases, for test_golden_sd_single.c's end-to-end run."""
    out = {}
    for name, model, cfg, *_ in gen_sd.CASES:
        if name in ("unet_sd1_f32", "vae_f32"):
            # [ldm, diffusers], + 1 where the LDM weight is the 1x1 conv of diffusers' matrix
            out[name] = [[l, d] + ([1] if ls != ds else [])
                         for l, d, ls, ds in (unet_entries(cfg) if model == "unet" else vae_entries(cfg))]
    return out


def cases():
    return [
        dict(name="sd1", family=1, text_prefix="cond_stage_model.transformer.", extra=EXTRA_SD1,
             unet=unet_entries(UNET_SD1), unet_config=kiln_unet_config(UNET_SD1, False),
             vae=vae_entries(VAE), vae_config=kiln_vae_config(VAE)),
        # a UNet and text encoder only: the VAE is optional
        dict(name="sd2", family=2, text_prefix="cond_stage_model.model.", extra=EXTRA_SD2,
             unet=unet_entries(UNET_SD2), unet_config=kiln_unet_config(UNET_SD2, True), vae=None, vae_config=None),
    ]


# ---- the proof against diffusers ------------------------------------------------------

def check_diffusers(src, stubs):
    if stubs:
        sys.path.insert(0, stubs)
        if os.path.exists(os.path.join(stubs, "_magicstubs.py")):
            import _magicstubs  # noqa: F401
    sys.path.insert(0, src)
    import torch
    from diffusers.loaders import single_file_utils as sfu
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    def meta(shape):
        return torch.empty(shape, device="meta")

    def same(got, entries, what):
        want = {d: tuple(ds) for _, d, _, ds in entries}
        have = {k: tuple(v.shape) for k, v in got.items()}
        assert have == want, "%s: differs: missing %s, extra %s, shapes %s" % (
            what, sorted(set(want) - set(have))[:5], sorted(set(have) - set(want))[:5],
            [(k, want[k], have[k]) for k in set(want) & set(have) if want[k] != have[k]][:5])

    for c in cases():
        unet_cfg, ldm_unet = (UNET_SD1, LDM_SD1) if c["family"] == 1 else (UNET_SD2, LDM_SD2)
        net = UNet2DConditionModel(**unet_cfg)
        same(net.state_dict(), c["unet"], c["name"] + ": diffusers' UNet2DConditionModel state_dict")
        del net
        ckpt = {UNET_PREFIX + l: meta(ls) for l, _, ls, _ in c["unet"]}
        ckpt.update({n: meta(s) for n, s in c["extra"]})
        if c["vae"]:
            ckpt.update({VAE_PREFIX + l: meta(ls) for l, _, ls, _ in c["vae"]})
        assert len(ckpt) == len(c["unet"]) + len(c["extra"]) + len(c["vae"] or []), "LDM names collide"
        original = {"model": {"params": {"unet_config": {"params": ldm_unet},
                                         "first_stage_config": {"params": {"ddconfig": LDM_VAE}}}}}
        dcfg = sfu.create_unet_diffusers_config_from_ldm(original, ckpt)
        k = c["unet_config"]
        heads = dcfg["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * k["n_blocks"]
        assert dcfg["down_block_types"] == unet_cfg["down_block_types"], dcfg
        assert dcfg["up_block_types"] == unet_cfg["up_block_types"], dcfg
        assert dcfg["block_out_channels"] == k["channels"] and dcfg["layers_per_block"] == k["layers_per_block"]
        assert list(heads) == k["heads"], (heads, k["heads"])
        assert dcfg["cross_attention_dim"] == k["cross_attention_dim"]
        assert dcfg["use_linear_projection"] == k["linear_projection"]
        assert dcfg["transformer_layers_per_block"] == 1 and dcfg["in_channels"] == k["in_channels"]
        # (sample_size: diffusers picks the v2 image size 768 by to_k being 1024 wide,
        # which these tiny widths are not; kiln uses the family, which agrees on real files)
        conv = sfu.convert_ldm_unet_checkpoint(ckpt, dcfg)
        same(conv, c["unet"], c["name"] + ": convert_ldm_unet_checkpoint")
        print("%s: UNet: %d tensors, state_dict, conversion and config agree" % (c["name"], len(c["unet"])))
        if c["vae"]:
            vae = AutoencoderKL(**VAE)
            same(vae.state_dict(), c["vae"], c["name"] + ": diffusers' AutoencoderKL state_dict")
            vcfg = sfu.create_vae_diffusers_config_from_ldm(original, ckpt)
            v = c["vae_config"]
            assert vcfg["block_out_channels"] == v["channels"] and vcfg["layers_per_block"] == v["layers_per_block"]
            assert vcfg["latent_channels"] == v["latent_channels"] and vcfg["in_channels"] == v["in_channels"]
            assert vcfg["out_channels"] == v["out_channels"]
            same(sfu.convert_ldm_vae_checkpoint(ckpt, vcfg), c["vae"], c["name"] + ": convert_ldm_vae_checkpoint")
            print("%s: VAE: %d tensors, state_dict, conversion and config agree" % (c["name"], len(c["vae"])))


def main():
    args = sys.argv[1:]
    if "--diffusers" in args:
        src = args[args.index("--diffusers") + 1]
        stubs = args[args.index("--stubs") + 1] if "--stubs" in args else None
        check_diffusers(src, stubs)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    doc = {"unet_prefix": UNET_PREFIX, "vae_prefix": VAE_PREFIX,
           "note": "generated by tests/golden/gen_sd_single.py; entries are [ldm name (after the prefix), "
                   "diffusers name, shape] or, where diffusers' shape differs, [..., ldm shape, diffusers shape], "
                   "shapes outermost first",
           "cases": [dict(c, unet=compact(c["unet"]), vae=c["vae"] and compact(c["vae"])) for c in cases()],
           "golden": golden_names()}
    with open(OUT, "w") as f:
        f.write(json.dumps(doc, separators=(",", ":")))
        f.write("\n")
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
