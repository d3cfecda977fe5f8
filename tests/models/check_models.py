#!/usr/bin/env python3
"""check_models.py — pins the model zoo to ARM_SPEC: parameter totals (§4, §10.1), state-dict names and shapes
(§6, §10.6, golden lists written from the spec), tags (§5.2), and that every ablation knob gives a verified graph.
Usage: check_models.py VMC ROOT [GROUP...]; groups: files counts names tags graphs (default: all).
Exit 1 on a mismatch."""
import json
import os
import subprocess
import sys

VMC, ROOT = sys.argv[1], sys.argv[2]
GROUPS = sys.argv[3:] or ["files", "counts", "names", "tags", "graphs"]
failures = []


def run(args):
    p = subprocess.run([VMC] + args, cwd=ROOT, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def info(path, model, sets=()):
    args = ["info", path, "--model", model, "--json"]
    for s in sets:
        args += ["--set", s]
    rc, out, err = run(args)
    if rc != 0:
        failures.append("vmc %s failed (%d):\n%s" % (" ".join(args), rc, err))
        return None
    doc = json.loads(out)
    found = [m for m in doc["models"] if m["name"] == model]
    if len(found) != 1:
        failures.append("vmc %s: model %s not in the JSON" % (" ".join(args), model))
        return None
    return found[0]


def expect(what, got, want):
    status = "ok  " if got == want else "FAIL"
    print("%s %-52s %15s  (expected %s)" % (status, what, format(got, ","), format(want, ",")))
    if got != want:
        failures.append("%s: %s, expected %s" % (what, got, want))


# (file, model, JSON field, expected): ARM_SPEC §4 (fine-tune totals; pretraining trainable excludes the frozen
# sin-cos tables and the mask buffer), §10.1 (Vim), §10.7 (Vim-B under ARM: 91,110,144 + ARM-B's decoder side
# 19,308,800).
COUNTS = [
    ("models/arm_b.vmc", "arm_b_ft224", "params", 85031656),
    ("models/arm_l.vmc", "arm_l_ft224", "params", 297035720),
    ("models/arm_h.vmc", "arm_h_ft224", "params", 662682088),
    ("models/arm_b.vmc", "arm_b_ft384", "params", 85323496),
    ("models/arm_l.vmc", "arm_l_ft384", "params", 297424840),
    ("models/arm_h.vmc", "arm_h_ft384", "params", 663265768),
    ("models/arm_b.vmc", "arm_b_ft224", "trainable", 85031656),
    ("models/arm_b.vmc", "arm_b_ft448s8", "params", 85031656 + (55 * 55 + 1 - 197) * 768),   # only pos_embed grows
    ("models/arm_b.vmc", "arm_b_supervised", "params", 85031656),
    ("models/arm_b.vmc", "arm_b_pretrain", "trainable", 99243008),
    ("models/arm_l.vmc", "arm_l_pretrain", "trainable", 303721696),
    ("models/arm_h.vmc", "arm_h_pretrain", "trainable", 659128064),
    ("models/vim_b.vmc", "vim_b", "params", 97598440),
    ("models/vim_b.vmc", "vim_t", "params", 7148008),
    ("models/vim_b.vmc", "vim_s", "params", 25796584),
    ("models/vim_b.vmc", "vim_b_pretrain", "trainable", 91110144 + 19308800),
]


def check_counts():
    for path, model, field, want in COUNTS:
        m = info(path, model)
        if m is not None:
            expect("%s %s" % (model, field), m[field], want)


def name_set(m):
    return {"%s %s" % (t["name"], ",".join(str(d) for d in t["shape"])) for t in m["tensors"]}


def check_names():
    for path, model, golden in [("models/arm_b.vmc", "arm_b_pretrain", "arm_b_pretrain.names"),
                                ("models/arm_b.vmc", "arm_b_ft224", "arm_b_ft224.names"),
                                ("models/vim_b.vmc", "vim_b", "vim_b.names")]:
        m = info(path, model)
        if m is None:
            continue
        with open(os.path.join(ROOT, "tests/models", golden)) as f:
            want = {line.strip() for line in f if line.strip()}
        got = name_set(m)
        missing, extra = sorted(want - got), sorted(got - want)
        print("%s %s: %d tensors, %d missing, %d unexpected" % ("ok  " if not missing and not extra else "FAIL",
                                                              model, len(got), len(missing), len(extra)))
        for line in missing[:20]:
            print("  missing:    " + line)
        for line in extra[:20]:
            print("  unexpected: " + line)
        if missing or extra or len(m["tensors"]) != len(want):
            failures.append("%s names differ from tests/models/%s" % (model, golden))


def tensor_map(m):
    return {t["name"]: t for t in m["tensors"]}


def lr_layer(t):
    ids = [int(x[len("lr_layer("):-1]) for x in t.get("tags", []) if x.startswith("lr_layer(")]
    return ids[0] if len(ids) == 1 else None


def check_tags():
    # §5.2: lr_layer 0 for cls_token, pos_embed, patch_embed; i + 1 for layers.i; depth + 1 for norm_f and head;
    # pos_embed and cls_token are not weight-decayed. §1.3/§1.4: frozen tables and the mask buffer in pretraining.
    m = info("models/arm_b.vmc", "arm_b_ft224")
    if m is not None:
        t = tensor_map(m)
        want = {"cls_token": 0, "pos_embed": 0, "patch_embed.proj.weight": 0, "patch_embed.proj.bias": 0,
                "layers.0.mixer.A_c_b_log": 1, "layers.5.norm2.bias": 6, "layers.11.mlp.w3.weight": 12,
                "norm_f.weight": 13, "head.weight": 13, "head.bias": 13}
        for name, k in want.items():
            expect("arm_b_ft224 lr_layer(%s)" % name, lr_layer(t[name]), k)
        for name in ["cls_token", "pos_embed"]:
            expect("arm_b_ft224 nodecay(%s)" % name, "nodecay" in t[name].get("tags", []), True)
        expect("arm_b_ft224 nodecay(head.weight)", "nodecay" in t["head.weight"].get("tags", []), False)
    m = info("models/arm_b.vmc", "arm_b_pretrain")
    if m is not None:
        t = tensor_map(m)
        for name, tag in [("pos_embed", "frozen"), ("dec_pos_embed", "frozen"), ("mask", "buffer")]:
            expect("arm_b_pretrain %s(%s)" % (tag, name), tag in t[name].get("tags", []), True)
            expect("arm_b_pretrain trainable(%s)" % name, t[name]["trainable"], False)
        expect("arm_b_pretrain trainable(ar_token)", t["ar_token"]["trainable"], True)


# Every knob value must give a graph that builds and verifies. ARM-B shapes (graph building allocates no data).
GRAPHS = [("models/ablations.vmc", "abl_unit_%dpx" % (16 * cs), []) for cs in (6, 4, 3, 2, 1)]
GRAPHS += [("models/ablations.vmc", "abl_order_" + o, []) for o in ("row", "row_rev", "col", "col_rev", "random")]
GRAPHS += [("models/ablations.vmc", m, []) for m in ("abl_dec_depth1", "abl_dec_depth2", "abl_dec_depth8",
                                                    "abl_dec_width384", "abl_dec_width1024", "abl_target_raw",
                                                    "abl_arch_vim", "abl_ft_dirs1", "abl_ft_dirs2", "abl_ft_dirs4",
                                                    "abl_supervised")]
GRAPHS += [("models/arm_b.vmc", m, []) for m in ("arm_b_pretrain", "arm_b_ft224", "arm_b_ft384", "arm_b_ft448s8")]
GRAPHS += [("models/arm_b.vmc", "arm_b_pretrain", ["--set", "cs=2", "--set", 'order="col_rev"'])]
GRAPHS += [("models/vim_b.vmc", m, []) for m in ("vim_b", "vim_b_pretrain")]
GRAPHS += [("models/tiny.vmc", m, []) for m in ("tiny_pretrain", "tiny_ft", "tiny_supervised")]


def check_graphs():
    for path, model, extra in GRAPHS:
        rc, out, err = run(["graph", path, "--model", model] + extra)
        ok = rc == 0 and out.strip() != ""
        print("%s vmc graph %s --model %s %s" % ("ok  " if ok else "FAIL", path, model, " ".join(extra)))
        if not ok:
            failures.append("vmc graph %s --model %s %s failed (%d):\n%s" % (path, model, " ".join(extra), rc, err))


def check_files():
    # Every file in models/ must check clean.
    files = []
    for d, _, names in os.walk(os.path.join(ROOT, "models")):
        files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names if n.endswith(".vmc")]
    rc, out, err = run(["check"] + sorted(files))
    print("%s vmc check models/**/*.vmc (%d files)" % ("ok  " if rc == 0 else "FAIL", len(files)))
    if rc != 0:
        failures.append("vmc check failed:\n" + err)


for group in GROUPS:
    {"counts": check_counts, "names": check_names, "tags": check_tags, "graphs": check_graphs,
     "files": check_files}[group]()

if failures:
    print("\n%d failure(s):" % len(failures))
    for f in failures:
        print("- " + f)
    sys.exit(1)
print("all model checks passed")
