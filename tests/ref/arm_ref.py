#!/usr/bin/env python3
"""arm_ref.py — an independent PyTorch implementation of ARM pretraining and 4-scan fine-tuning, written from
ARM_SPEC.md (fp32, no autocast, sequential scan), used to check vmc's loss and every gradient.

  python3 arm_ref.py init  --mode pretrain|finetune --size b|l|h [--img 224] --out W.safetensors [--seed 0]
  python3 arm_ref.py inputs --mode pretrain|finetune --batch 2 [--img 224] [--classes 1000] --out X.safetensors
  python3 arm_ref.py grad  --mode pretrain|finetune --size b --weights W --inputs X --out G.safetensors
  python3 arm_ref.py compare A.safetensors B.safetensors [--tol 1e-4]

Weights use the reference state_dict names (ARM_SPEC §6); G holds "loss" and one gradient per trainable tensor
under the same names."""
import argparse, math, sys
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

SIZES = {"b": (768, 12), "l": (1024, 24), "h": (1536, 24)}
N_STATE, D_CONV, DEC_W, DEC_DEPTH, DEC_MLP = 16, 4, 512, 4, 2048
DIRS = ["", "_b", "_c", "_c_b"]


def dims(size):
    C, depth = SIZES[size]
    return C, depth, math.ceil(C / 16), C * 4 * 2 // 3


def dir_names(sfx):
    """State-dict keys of one scan direction (ARM_SPEC §3.2)."""
    return {"conv_w": f"conv1d{sfx}.weight", "conv_b": f"conv1d{sfx}.bias", "x_proj": f"x_proj{sfx}.weight",
            "dt_w": f"dt_proj{sfx}.weight", "dt_b": f"dt_proj{sfx}.bias",
            "A_log": "A_log" if sfx == "" else f"A{sfx}_log", "D": "D" if sfx == "" else f"D{sfx}"}


# ----------------------------------------------------------------------------------------------- init
def sincos_2d(dim, g):
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float32) / q))
    r, c = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32), indexing="ij")
    oc, orr = c.reshape(-1, 1) * omega, r.reshape(-1, 1) * omega
    return torch.cat([oc.sin(), oc.cos(), orr.sin(), orr.cos()], 1).unsqueeze(0)


def init_weights(mode, size, img, classes, seed):
    torch.manual_seed(seed)
    C, depth, R, H = dims(size)
    W = {}
    lin = lambda o, i: torch.empty(o, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i))
    W["patch_embed.proj.weight"] = torch.nn.init.trunc_normal_(torch.empty(C, 3, 16, 16), std=math.sqrt(1 / 768) / .87962566103423978, a=-2 * math.sqrt(1 / 768) / .87962566103423978, b=2 * math.sqrt(1 / 768) / .87962566103423978)
    W["patch_embed.proj.bias"] = torch.zeros(C)
    ndir = 1 if mode == "pretrain" else 4
    for i in range(depth):
        p = f"layers.{i}."
        W[p + "mixer.in_proj.weight"] = lin(2 * C, C)
        W[p + "mixer.out_proj.weight"] = lin(C, C) / math.sqrt(depth)
        for sfx in DIRS[:ndir]:
            n = dir_names(sfx)
            W[p + "mixer." + n["conv_w"]] = torch.empty(C, 1, D_CONV).uniform_(-.5, .5)
            W[p + "mixer." + n["conv_b"]] = torch.empty(C).uniform_(-.5, .5)
            W[p + "mixer." + n["x_proj"]] = lin(R + 2 * N_STATE, C)
            W[p + "mixer." + n["dt_w"]] = torch.empty(C, R).uniform_(-R ** -.5, R ** -.5)
            dt = torch.exp(torch.rand(C) * (math.log(.1) - math.log(.001)) + math.log(.001)).clamp(min=1e-4)
            W[p + "mixer." + n["dt_b"]] = dt + torch.log(-torch.expm1(-dt))
            W[p + "mixer." + n["A_log"]] = torch.log(torch.arange(1, N_STATE + 1, dtype=torch.float32)).repeat(C, 1)
            W[p + "mixer." + n["D"]] = torch.ones(C)
        for k, (o, i_) in {"w1": (H, C), "w2": (H, C), "w3": (C, H)}.items():
            W[p + f"mlp.{k}.weight"] = lin(o, i_)
            W[p + f"mlp.{k}.bias"] = torch.empty(o).uniform_(-.1, .1)   # nonzero so bias grads are checked
        for k in ("norm1", "norm2"):
            W[p + k + ".weight"] = 1 + 0.1 * torch.randn(C)
            W[p + k + ".bias"] = 0.1 * torch.randn(C)
    if mode == "pretrain":
        W["pos_embed"] = sincos_2d(C, 12)
        W["dec_pos_embed"] = sincos_2d(DEC_W, 12)
        W["ar_token"] = 0.02 * torch.randn(1, 1, DEC_W)
        q = torch.arange(128)
        W["mask"] = torch.where((q.view(1, -1) // 16) <= (q.view(-1, 1) // 16), 0.0, float("-inf"))
        for k in range(1, 5):
            W[f"norm_{k}.weight"] = 1 + 0.1 * torch.randn(C)
            W[f"norm_{k}.bias"] = 0.1 * torch.randn(C)
        W["enc2dec.weight"] = lin(4 * DEC_W, 4 * C)
        W["enc2dec.bias"] = 0.1 * torch.randn(4 * DEC_W)
        for j in range(DEC_DEPTH):
            p = f"dec_block.{j}."
            for k, (o, i_) in {"attn2.q": (DEC_W, DEC_W), "attn2.kv": (2 * DEC_W, DEC_W), "attn2.proj": (DEC_W, DEC_W),
                               "mlp.fc1": (DEC_MLP, DEC_W), "mlp.fc2": (DEC_W, DEC_MLP)}.items():
                W[p + k + ".weight"] = torch.nn.init.xavier_uniform_(torch.empty(o, i_))
                W[p + k + ".bias"] = 0.1 * torch.randn(o)
            for k in ("norm2_1", "norm2_2", "norm2"):
                W[p + k + ".weight"] = 1 + 0.1 * torch.randn(DEC_W)
                W[p + k + ".bias"] = 0.1 * torch.randn(DEC_W)
        W["ar_norm.weight"] = 1 + 0.1 * torch.randn(DEC_W)
        W["ar_norm.bias"] = 0.1 * torch.randn(DEC_W)
        W["ar_pred.weight"] = lin(768, DEC_W)
        W["ar_pred.bias"] = 0.1 * torch.randn(768)
    else:
        g = img // 16
        W["cls_token"] = 0.02 * torch.randn(1, 1, C)
        W["pos_embed"] = 0.02 * torch.randn(1, g * g + 1, C)
        W["norm_f.weight"] = 1 + 0.1 * torch.randn(C)
        W["norm_f.bias"] = 0.1 * torch.randn(C)
        W["head.weight"] = 0.02 * torch.randn(classes, C)
        W["head.bias"] = torch.zeros(classes)
    return {k: v.contiguous().float() for k, v in W.items()}


# ----------------------------------------------------------------------------------------------- model
def layer_norm(x, W, name):
    return F.layer_norm(x, x.shape[-1:], W[name + ".weight"], W[name + ".bias"], 1e-5)


def linear(x, W, name, bias=True):
    return F.linear(x, W[name + ".weight"], W[name + ".bias"] if bias else None)


def scan_direction(x, z, W, p, sfx):
    """§2.3 without out_proj: conv -> silu -> x_proj -> dt -> scan (+D u) -> * silu(z). x, z: (B, L, Di)."""
    n = dir_names(sfx)
    Bsz, L, Di = x.shape
    R = W[p + n["dt_w"]].shape[1]
    u = F.conv1d(x.transpose(1, 2), W[p + n["conv_w"]], W[p + n["conv_b"]], padding=D_CONV - 1, groups=Di)[..., :L]
    u = F.silu(u).transpose(1, 2)                                   # (B, L, Di)
    xdbl = u @ W[p + n["x_proj"]].t()
    dt_low, Bm, Cm = xdbl[..., :R], xdbl[..., R:R + N_STATE], xdbl[..., R + N_STATE:]
    delta = F.softplus(dt_low @ W[p + n["dt_w"]].t() + W[p + n["dt_b"]])
    A = -torch.exp(W[p + n["A_log"]])                               # (Di, N)
    h = torch.zeros(Bsz, Di, N_STATE, dtype=x.dtype, device=x.device)
    ys = []
    for t in range(L):
        dA = torch.exp(delta[:, t, :, None] * A)
        h = dA * h + delta[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1) + W[p + n["D"]] * u
    return y * F.silu(z)


def column_perm(L):
    """Sequence position -> raster position for the column-major direction with the middle cls (§3.2)."""
    g = int(math.isqrt(L - 1))
    tp = (L - 1) // 2
    pos = lambda patch: patch if patch < tp else patch + 1
    col = [r * g + c for c in range(g) for r in range(g)]
    return [pos(col[s]) if s < tp else tp if s == tp else pos(col[s - 1]) for s in range(L)]


def mixer(h, W, p, ndir):
    xz = h @ W[p + "in_proj.weight"].t()
    Di = xz.shape[-1] // 2
    x, z = xz[..., :Di], xz[..., Di:]
    if ndir == 1:
        return scan_direction(x, z, W, p, "") @ W[p + "out_proj.weight"].t()
    L = x.shape[1]
    fwd = list(range(L))
    col = column_perm(L)
    perms = [fwd, fwd[::-1], col, col[::-1]]
    o = torch.zeros_like(x)
    for sfx, perm in zip(DIRS, perms):
        idx = torch.tensor(perm, device=x.device)
        od = scan_direction(x[:, idx], z[:, idx], W, p, sfx)
        o = o.index_add(1, idx, od)                                 # back to raster order
    return (o / 4) @ W[p + "out_proj.weight"].t()


def block(x, W, i, ndir):
    p = f"layers.{i}."
    h = x + mixer(layer_norm(x, W, p + "norm1"), W, p + "mixer.", ndir)
    m = layer_norm(h, W, p + "norm2")
    return h + linear(F.silu(linear(m, W, p + "mlp.w1")) * linear(m, W, p + "mlp.w2"), W, p + "mlp.w3")


def patch_embed(img, W):
    x = F.conv2d(img, W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=16)
    return x.flatten(2).transpose(1, 2)


def cluster_order(x, g=12, cs=4):
    """(B, g*g, C) raster -> (B, clusters, cs*cs, C), '(h p1) (w p2) -> (h w) (p1 p2)'."""
    B, _, C = x.shape
    n = g // cs
    return x.view(B, n, cs, n, cs, C).permute(0, 1, 3, 2, 4, 5).reshape(B, n * n, cs * cs, C)


def pretrain_loss(W, img, depth):
    B = img.shape[0]
    x = patch_embed(img, W) + W["pos_embed"]
    x = cluster_order(x)[:, :-1].reshape(B, 128, -1)
    taps = {depth // 2, 2 * depth // 3, 5 * depth // 6, depth}
    feats = []
    for i in range(depth):
        x = block(x, W, i, 1)
        if i + 1 in taps:
            feats.append(layer_norm(x, W, f"norm_{len(feats) + 1}"))
    kv_all = linear(torch.cat(feats, -1), W, "enc2dec").view(B, 128, DEC_W, 4)
    q = cluster_order(W["ar_token"] + W["dec_pos_embed"])[:, 1:].reshape(1, 128, DEC_W).expand(B, -1, -1)
    for j in range(DEC_DEPTH):
        p = f"dec_block.{j}."
        kv = layer_norm(kv_all[..., j], W, p + "norm2_2")
        qq = linear(layer_norm(q, W, p + "norm2_1"), W, p + "attn2.q").view(B, 128, 8, 64).transpose(1, 2)
        kvp = linear(kv, W, p + "attn2.kv")
        k = kvp[..., :DEC_W].reshape(B, 128, 8, 64).transpose(1, 2)
        v = kvp[..., DEC_W:].reshape(B, 128, 8, 64).transpose(1, 2)
        a = torch.softmax(qq @ k.transpose(-1, -2) * 0.125 + W["mask"], -1)
        q = q + linear((a @ v).transpose(1, 2).reshape(B, 128, DEC_W), W, p + "attn2.proj")
        q = q + linear(F.gelu(linear(layer_norm(q, W, p + "norm2"), W, p + "mlp.fc1")), W, p + "mlp.fc2")
    pred = linear(layer_norm(q, W, "ar_norm"), W, "ar_pred")
    t = img.view(B, 3, 12, 16, 12, 16).permute(0, 2, 4, 3, 5, 1).reshape(B, 144, 768)   # (pr, pc, ch)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** .5
    t = cluster_order(t)[:, 1:].reshape(B, 128, 768)
    return ((pred - t) ** 2).mean()


def finetune_loss(W, img, labels, depth):
    x = patch_embed(img, W)
    tp = x.shape[1] // 2
    x = torch.cat([x[:, :tp], W["cls_token"].expand(x.shape[0], -1, -1), x[:, tp:]], 1) + W["pos_embed"]
    for i in range(depth):
        x = block(x, W, i, 4)
    x = layer_norm(x, W, "norm_f")
    feat = torch.cat([x[:, :tp], x[:, tp + 1:]], 1).mean(1)
    return F.cross_entropy(linear(feat, W, "head"), labels.long())


# ----------------------------------------------------------------------------------------------- commands
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["init", "inputs", "grad", "compare"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--mode", default="pretrain")
    ap.add_argument("--size", default="b")
    ap.add_argument("--img", type=int, default=None)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights"); ap.add_argument("--inputs"); ap.add_argument("--out")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    img = a.img or (192 if a.mode == "pretrain" else 224)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if a.cmd == "init":
        save_file(init_weights(a.mode, a.size, img, a.classes, a.seed), a.out)
    elif a.cmd == "inputs":
        g = torch.Generator().manual_seed(a.seed + 1)
        X = {"images": torch.randn(a.batch, 3, img, img, generator=g)}
        if a.mode == "finetune":
            X["labels"] = torch.randint(0, a.classes, (a.batch,), generator=g).to(torch.int32)
        save_file(X, a.out)
    elif a.cmd == "grad":
        W = {k: v.to(dev).requires_grad_(True) for k, v in load_file(a.weights).items()}
        X = {k: v.to(dev) for k, v in load_file(a.inputs).items()}
        depth = SIZES[a.size][1]
        if a.mode == "pretrain":
            loss = pretrain_loss(W, X["images"], depth)
        else:
            loss = finetune_loss(W, X["images"], X["labels"], depth)
        loss.backward()
        frozen = {"pos_embed", "dec_pos_embed", "mask"} if a.mode == "pretrain" else set()
        G = {k: v.grad.detach().cpu().contiguous() for k, v in W.items() if k not in frozen and v.grad is not None}
        G["loss"] = loss.detach().cpu().reshape(1)
        save_file(G, a.out)
        print(f"loss {loss.item():.8f}  ({len(G) - 1} gradients)")
    else:
        A, B = load_file(a.files[0]), load_file(a.files[1])
        worst, bad = 0.0, []
        missing = sorted(set(A) ^ set(B))
        for k in sorted(set(A) & set(B)):
            x, y = A[k].double().flatten(), B[k].double().flatten()
            if x.shape != y.shape:
                bad.append(f"{k}: shape {tuple(A[k].shape)} vs {tuple(B[k].shape)}"); continue
            rel = ((x - y).norm() / y.norm().clamp_min(1e-30)).item()
            worst = max(worst, rel)
            if not rel <= a.tol:
                bad.append(f"{k}: rel L2 err {rel:.3e}")
        print(f"compared {len(set(A) & set(B))} tensors, worst rel L2 err {worst:.3e} (tol {a.tol:g})")
        for m in missing:
            print("only in one file:", m)
        for b in bad:
            print("MISMATCH", b)
        sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
