#!/usr/bin/env python3
"""vim_ref.py — a PyTorch Vim (ARM_SPEC §10: RMSNorm + bimamba v2 mixer, expand 2, middle cls token, head on the cls
token), fp32 with a sequential scan, for loss/gradient parity of models/vim_b.vmc. The scan direction is
tests/ref/arm_ref.py's (§2.3 without out_proj); everything Vim-specific is written here from §10.

  python3 vim_ref.py init --size b|s|t --out W.safetensors [--seed 0]
  python3 vim_ref.py grad --size b --weights W --inputs X --out G.safetensors
Inputs come from `arm_ref.py inputs --mode finetune` (images [B,3,224,224], labels)."""
import argparse, math, os, sys
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
from arm_ref import dir_names, linear, patch_embed, scan_direction  # noqa: E402

SIZES = {"t": 192, "s": 384, "b": 768}
DEPTH, N_STATE = 24, 16


def init_weights(C, classes, seed):
    """Random weights with the §10.6 names and shapes (scales as §10.5, norms perturbed so their grads matter)."""
    torch.manual_seed(seed)
    Di, R, M = 2 * C, math.ceil(C / 16), 196
    u = lambda shape, b: torch.empty(shape).uniform_(-b, b)
    W = {"cls_token": 0.02 * torch.randn(1, 1, C), "pos_embed": 0.02 * torch.randn(1, M + 1, C),
         "patch_embed.proj.weight": u((C, 3, 16, 16), 768 ** -.5), "patch_embed.proj.bias": u((C,), .02),
         "head.weight": 0.02 * torch.randn(classes, C), "head.bias": torch.zeros(classes),
         "norm_f.weight": 1 + 0.1 * torch.randn(C)}
    for i in range(DEPTH):
        p = f"layers.{i}.mixer."
        W[f"layers.{i}.norm.weight"] = 1 + 0.1 * torch.randn(C)
        W[p + "in_proj.weight"] = u((2 * Di, C), C ** -.5)
        W[p + "out_proj.weight"] = u((C, Di), Di ** -.5) / math.sqrt(DEPTH)
        for sfx in ("", "_b"):
            n = dir_names(sfx)
            W[p + n["conv_w"]] = u((Di, 1, 4), .5)
            W[p + n["conv_b"]] = u((Di,), .5)
            W[p + n["x_proj"]] = u((R + 2 * N_STATE, Di), Di ** -.5)
            W[p + n["dt_w"]] = u((Di, R), R ** -.5)
            dt = torch.exp(torch.rand(Di) * (math.log(.1) - math.log(.001)) + math.log(.001)).clamp(min=1e-4)
            W[p + n["dt_b"]] = dt + torch.log(-torch.expm1(-dt))
            W[p + n["A_log"]] = torch.log(torch.arange(1, N_STATE + 1, dtype=torch.float32)).repeat(Di, 1)
            W[p + n["D"]] = torch.ones(Di)
    return {k: v.contiguous().float() for k, v in W.items()}


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def mixer(h, W, p):
    """Bimamba v2 (§10.3): forward scan and a scan of the reversed sequence (x and z flipped), merged /2."""
    xz = h @ W[p + "in_proj.weight"].t()
    Di = xz.shape[-1] // 2
    x, z = xz[..., :Di], xz[..., Di:]
    o = scan_direction(x, z, W, p, "") + scan_direction(x.flip(1), z.flip(1), W, p, "_b").flip(1)
    return (o / 2) @ W[p + "out_proj.weight"].t()


def vim_loss(W, img, labels):
    x = patch_embed(img, W)
    tp = x.shape[1] // 2
    r = torch.cat([x[:, :tp], W["cls_token"].expand(x.shape[0], -1, -1), x[:, tp:]], 1) + W["pos_embed"]
    for i in range(DEPTH):
        r = r + mixer(rms_norm(r, W[f"layers.{i}.norm.weight"]), W, f"layers.{i}.mixer.")
    out = rms_norm(r, W["norm_f.weight"])
    return F.cross_entropy(linear(out[:, tp], W, "head"), labels.long())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["init", "grad"])
    ap.add_argument("--size", default="b")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights"); ap.add_argument("--inputs"); ap.add_argument("--out")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.cmd == "init":
        save_file(init_weights(SIZES[a.size], a.classes, a.seed), a.out)
        return
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    W = {k: v.to(dev).requires_grad_(True) for k, v in load_file(a.weights).items()}
    X = {k: v.to(dev) for k, v in load_file(a.inputs).items()}
    loss = vim_loss(W, X["images"], X["labels"])
    loss.backward()
    G = {k: v.grad.detach().cpu().contiguous() for k, v in W.items() if v.grad is not None}
    G["loss"] = loss.detach().cpu().reshape(1)
    save_file(G, a.out)
    print(f"loss {loss.item():.8f}  ({len(G) - 1} gradients)")


if __name__ == "__main__":
    main()
