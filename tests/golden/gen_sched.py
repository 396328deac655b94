#!/usr/bin/python3
"""gen_sched.py - reference schedules and steps for kiln's Stable Diffusion samplers.

An independent numpy implementation (float64 arithmetic on float32 tables, as the
diffusers classes hold them) of the samplers in src/pipelines/sd_sched.h:

  ddim            DDIM, eta 0 (Song et al. 2020, eq. 12)
  euler           Euler on the k-diffusion ODE (Karras et al. 2022, alg. 2, no churn)
  euler_a         Euler ancestral (sigma_up / sigma_down split of sigma_to, eta 1)
  dpmpp_2m        DPM-Solver++(2M) (Lu et al. 2022, alg. 2), midpoint, data prediction
  dpmpp_2m_karras the same on Karras sigmas (Karras et al. 2022, eq. 5, rho 7)
  lcm             latent consistency multistep sampling (Luo et al. 2023, alg. 3)

with diffusers' conventions for each class's defaults, timestep spacings ("leading"
+ steps_offset, "trailing", "linspace"; Lin et al. 2023, table 2), zero-SNR rescaling
(Lin et al. 2023, alg. 1) and prediction types (epsilon, v (Salimans & Ho 2022), sample).
Timesteps use numpy's own linspace / arange / round, as the schedulers do.

Writes tests/golden/data/sched/<sampler>.json (cases: the diffusers config keys, steps,
timesteps, sigmas, init_noise_sigma, and the latents after steps 1..3 and after the
last on 16 values from fixed formulas) and tables.json (alphas_cumprod).

Run: /usr/bin/python3 tests/golden/gen_sched.py
"""
import json
import math
import os

import numpy as np

F = np.float32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sched")
N_VALUES = 16

# --- configs -------------------------------------------------------------------------

CLASS_DEFAULTS = {  # the __init__ defaults of each diffusers class that kiln reads
    "ddim": dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                 prediction_type="epsilon", steps_offset=0, timestep_spacing="leading", set_alpha_to_one=True,
                 clip_sample=True, clip_sample_range=1.0, rescale_betas_zero_snr=False),
    "euler": dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                  prediction_type="epsilon", steps_offset=0, timestep_spacing="linspace",
                  rescale_betas_zero_snr=False),
    "lcm": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon", steps_offset=0, set_alpha_to_one=True, clip_sample=False,
                clip_sample_range=1.0, rescale_betas_zero_snr=False, original_inference_steps=50,
                timestep_scaling=10.0),
}
for k in ("euler_a", "dpmpp_2m", "dpmpp_2m_karras"):
    CLASS_DEFAULTS[k] = CLASS_DEFAULTS["euler"]

# Stable Diffusion 1.x/2.x's scheduler_config.json (written for PNDMScheduler)
SD = dict(_class_name="PNDMScheduler", beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
          num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
          trained_betas=None, clip_sample=False)


def resolve(sampler, file_cfg):
    c = dict(CLASS_DEFAULTS[sampler])
    c.update({k: v for k, v in file_cfg.items() if k in c})
    return c


# --- tables ---------------------------------------------------------------------------

def torch_linspace_f32(a, b, n):
    """torch.linspace(a, b, n, dtype=float32), ATen's scalar formula in float32."""
    a, b = F(a), F(b)
    step = F((b - a) / F(n - 1))
    half = n // 2
    return np.array([a + step * F(i) if i < half else b - step * F(n - 1 - i) for i in range(n)], dtype=F)


def cumprod_f32(alphas):
    """torch.cumprod on CPU: a double accumulator, each output rounded to float32."""
    out, acc = np.zeros(len(alphas), dtype=F), 1.0
    for i, a in enumerate(alphas):
        acc *= float(a)
        out[i] = F(acc)
    return out


def alphas_cumprod(c, zero_snr_floor):
    n = c["num_train_timesteps"]
    if c["beta_schedule"] == "linear":
        betas = torch_linspace_f32(c["beta_start"], c["beta_end"], n)
    elif c["beta_schedule"] == "scaled_linear":
        b = torch_linspace_f32(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n)
        betas = b * b
    else:  # squaredcos_cap_v2 (Nichol & Dhariwal 2021, eq. 17), betas clipped at 0.999
        ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = np.array([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)], dtype=F)
    if c["rescale_betas_zero_snr"]:  # Lin et al. 2023, alg. 1, float32 as torch
        s = np.sqrt(cumprod_f32(F(1) - betas))
        s0, sT = s[0], s[-1]
        s = (s - sT) * F(s0 / (s0 - sT))
        ab = s * s
        alphas = np.concatenate([ab[:1], ab[1:] / ab[:-1]]).astype(F)
        betas = F(1) - alphas
    ac = cumprod_f32(F(1) - betas)
    if c["rescale_betas_zero_snr"] and zero_snr_floor:
        ac[-1] = F(2.0 ** -24)
    return ac


def trailing(n, steps):
    t = np.arange(n, 0, -n / steps).round() - 1
    assert len(t) == steps
    return t


def timesteps_of(sampler, c, steps):
    n = c["num_train_timesteps"]
    if sampler == "lcm":
        orig = c["original_inference_steps"]
        k = n // orig
        origin = (np.arange(1, orig + 1) * k - 1)[::-1]
        idx = np.floor(np.linspace(0, orig, num=steps, endpoint=False)).astype(np.int64)
        return origin[idx].astype(np.float64)
    sp = c["timestep_spacing"]
    dpm = sampler.startswith("dpmpp")
    if sp == "linspace":
        if dpm:
            return np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].copy()
        if sampler == "ddim":
            return np.linspace(0, n - 1, steps).round()[::-1].copy()
        return np.linspace(0, n - 1, steps, dtype=F)[::-1].astype(np.float64)
    if sp == "leading":
        if dpm:
            r = n // (steps + 1)
            return (np.arange(0, steps + 1) * r)[::-1][:-1].astype(np.float64) + c["steps_offset"]
        r = n // steps
        return (np.arange(0, steps) * r)[::-1].astype(np.float64) + c["steps_offset"]
    return trailing(n, steps)


def sigma_to_t(sigma, log_sigmas):
    """The fractional index of log(sigma) in the ascending log_sigmas, linear in log sigma."""
    ls = math.log(max(sigma, 1e-10))
    low = 0
    for k in range(len(log_sigmas)):
        if ls - float(log_sigmas[k]) >= 0:
            low = k
    low = min(low, len(log_sigmas) - 2)
    lo, hi = float(log_sigmas[low]), float(log_sigmas[low + 1])
    w = min(max((lo - ls) / (lo - hi), 0.0), 1.0)
    return (1 - w) * low + w * (low + 1)


def schedule(sampler, c, steps):
    sigma_kind = sampler not in ("ddim", "lcm")
    ac = alphas_cumprod(c, zero_snr_floor=sigma_kind)
    ts = timesteps_of(sampler, c, steps)
    sigmas = None
    init = 1.0
    if sigma_kind:
        table = np.sqrt((F(1) - ac) / ac).astype(F)  # float32, as torch
        if sampler == "dpmpp_2m_karras":
            log_sigmas = np.log(table)  # float32
            rho = 7.0
            smin, smax = float(table[0]), float(table[-1])
            ramp = np.linspace(0, 1, steps)
            sig = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
            ts = np.array([sigma_to_t(s, log_sigmas) for s in sig])
            # rounded, except for squaredcos_cap_v2, where the int64 cast truncates
            ts = np.trunc(ts) if c["beta_schedule"] == "squaredcos_cap_v2" else ts.round()
        else:
            sig = np.interp(ts, np.arange(len(table)), table)
        sigmas = np.concatenate([sig, [0.0]]).astype(F)
        if sampler in ("euler", "euler_a"):
            m = sigmas.max()
            init = float(np.sqrt(m * m + F(1))) if c["timestep_spacing"] == "leading" else float(m)
    return ac, ts, sigmas, init


# --- steps ----------------------------------------------------------------------------

def inputs(k):
    """model output and noise of step k (exact in float32 from both sides)"""
    j = np.arange(N_VALUES)
    m = (((j * 7 + k * 13) % 17) - 8) / 8.0
    e = (((j * 5 + k * 11) % 19) - 9) / 9.0
    return m.astype(F).astype(np.float64), e.astype(F).astype(np.float64)


def predict(pred, a, x, m):
    sa, sb = math.sqrt(a), math.sqrt(1 - a)
    if pred == "epsilon":
        return (x - sb * m) / sa, m
    if pred == "v_prediction":
        return sa * x - sb * m, sa * m + sb * x
    return m, (x - sa * m) / sb


class Runner:
    def __init__(self, sampler, c, steps):
        self.s, self.c, self.steps = sampler, c, steps
        self.ac, self.ts, self.sigmas, self.init = schedule(sampler, c, steps)
        self.prev_x0 = None
        self.lower = 0

    def step(self, i, m, x, noise):
        s, c = self.s, self.c
        pred = c["prediction_type"]
        if s in ("euler", "euler_a"):
            sigma, to = float(self.sigmas[i]), float(self.sigmas[i + 1])
            if pred == "epsilon":
                x0 = x - sigma * m
            elif pred == "v_prediction":
                x0 = m * (-sigma / math.sqrt(sigma ** 2 + 1)) + x / (sigma ** 2 + 1)
            else:
                x0 = m
            d = (x - x0) / sigma
            if s == "euler":
                return x + d * (to - sigma)
            up = math.sqrt(to ** 2 * (sigma ** 2 - to ** 2) / sigma ** 2)
            down = math.sqrt(to ** 2 - up ** 2)
            return x + d * (down - sigma) + noise * up
        if s == "ddim":
            t = int(self.ts[i])
            prev = t - c["num_train_timesteps"] // self.steps
            a = float(self.ac[t])
            ap = float(self.ac[prev]) if prev >= 0 else (1.0 if c["set_alpha_to_one"] else float(self.ac[0]))
            x0, eps = predict(pred, a, x, m)
            if c["clip_sample"]:
                x0 = np.clip(x0, -c["clip_sample_range"], c["clip_sample_range"])
            return math.sqrt(ap) * x0 + math.sqrt(1 - ap) * eps
        if s == "lcm":
            t = int(self.ts[i])
            last = i == self.steps - 1
            prev = t if last else int(self.ts[i + 1])
            a, ap = float(self.ac[t]), float(self.ac[prev])
            x0, _ = predict(pred, a, x, m)
            if c["clip_sample"]:
                x0 = np.clip(x0, -c["clip_sample_range"], c["clip_sample_range"])
            st = t * c["timestep_scaling"]
            c_skip = 0.25 / (st ** 2 + 0.25)
            c_out = st / math.sqrt(st ** 2 + 0.25)
            den = c_out * x0 + c_skip * x
            return den if last else math.sqrt(ap) * den + math.sqrt(1 - ap) * noise
        # DPM-Solver++(2M)
        def al_si(sig):
            al = 1 / math.sqrt(sig ** 2 + 1)
            return al, sig * al
        a_s, s_s = al_si(float(self.sigmas[i]))
        sig_t = float(self.sigmas[i + 1])
        lam_s = math.log(a_s) - math.log(s_s)
        if pred == "epsilon":
            x0 = (x - s_s * m) / a_s
        elif pred == "v_prediction":
            x0 = a_s * x - s_s * m
        else:
            x0 = m
        x0 = x0.astype(F).astype(np.float64)
        if sig_t == 0:  # alpha_t 1, sigma_t 0: x0
            out = x0.copy()
        else:
            a_t, s_t = al_si(sig_t)
            h = (math.log(a_t) - math.log(s_t)) - lam_s
            first = self.lower < 1 or i == self.steps - 1
            out = (s_t / s_s) * x - a_t * (math.exp(-h) - 1) * x0
            if not first:
                a_1, s_1 = al_si(float(self.sigmas[i - 1]))
                r0 = (lam_s - (math.log(a_1) - math.log(s_1))) / h
                d1 = (1 / r0) * (x0 - self.prev_x0)
                out = out - 0.5 * (a_t * (math.exp(-h) - 1)) * d1
        self.prev_x0 = x0
        self.lower = min(self.lower + 1, 2)
        return out

    def needs_noise(self, i):
        return self.s == "euler_a" or (self.s == "lcm" and i != self.steps - 1)


def x_init(init):
    j = np.arange(N_VALUES)
    return (((j * 3) % 16 - 7.5) / 5.0).astype(F) * F(init)


def case(sampler, file_cfg, steps):
    c = resolve(sampler, file_cfg)
    r = Runner(sampler, c, steps)
    x = x_init(r.init).astype(np.float64)
    after = []
    for i in range(steps):
        m, e = inputs(i)
        x = r.step(i, m, x, e if r.needs_noise(i) else None).astype(F).astype(np.float64)
        if i < 3:
            after.append(x.copy())
    f9 = lambda v: float("%.9g" % v)
    return {
        "config": file_cfg,
        "steps": steps,
        "timesteps": [float(t) for t in r.ts],  # exact (integers or float32 values)
        "sigmas": None if r.sigmas is None else [f9(s) for s in r.sigmas],
        "init_noise_sigma": f9(r.init),
        "after": [[f9(v) for v in a] for a in after],
        "final": [f9(v) for v in x],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    step_counts = [1, 2, 4, 20, 25, 50]
    samplers = ["ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "lcm"]
    for s in samplers:
        cases = []
        spacings = ["leading"] if s in ("lcm", "dpmpp_2m_karras") else ["leading", "trailing", "linspace"]
        for sp in spacings:
            for pred in ["epsilon", "v_prediction"]:
                for n in step_counts:
                    cfg = dict(SD, prediction_type=pred)
                    if s != "lcm":
                        cfg["timestep_spacing"] = sp
                    cases.append(case(s, cfg, n))
        if s != "lcm":
            cases.append(case(s, dict(SD, timestep_spacing="leading"), 150))
        if s != "euler_a":
            cases.append(case(s, dict(SD, prediction_type="sample", timestep_spacing="leading"), 4))
        cases.append(case(s, {}, 20))  # the class's own defaults (ddim: clip_sample, linear betas)
        cases.append(case(s, dict(SD, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing"), 20))
        cases.append(case(s, dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing",
                                  prediction_type="v_prediction"), 20))
        with open(os.path.join(OUT, s + ".json"), "w") as f:
            json.dump({"sampler": s, "n_values": N_VALUES, "cases": cases}, f, separators=(",", ":"))
            f.write("\n")
        print(s, len(cases), "cases")
    tables = []
    for name, cfg in [("sd", SD), ("linear", {}), ("squaredcos", dict(SD, beta_schedule="squaredcos_cap_v2")),
                      ("sd_zero_snr", dict(SD, rescale_betas_zero_snr=True))]:
        for s in ("ddim", "euler"):
            ac = alphas_cumprod(resolve(s, cfg), zero_snr_floor=s != "ddim")
            tables.append({"name": name, "sampler": s, "config": cfg, "alphas_cumprod": [float("%.9g" % v) for v in ac]})
            if not cfg.get("rescale_betas_zero_snr"):
                break  # the floor is the only difference between samplers
    with open(os.path.join(OUT, "tables.json"), "w") as f:
        json.dump({"tables": tables}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
