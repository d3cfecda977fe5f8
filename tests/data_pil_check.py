#!/usr/bin/env python3
"""data_pil_check.py — compares runtime/data_*.c with Pillow on random images: bicubic resize (with boxes, as
RandomResizedCrop uses) and every RandAugment op as timm calls it (fill (124, 116, 104), bicubic). Exits 77 (skip)
when Pillow is not installed. Pillow <= 12 resizes horizontally first and must match exactly; Pillow 13 picks the
pass order itself, so there up to 1 level of difference is accepted for resize. usage: data_pil_check.py HARNESS"""
import atexit, math, os, random, shutil, subprocess, sys, tempfile
try:
    from PIL import Image, ImageEnhance, ImageOps
    import PIL
except ImportError:
    print("Pillow not installed: skipped")
    sys.exit(77)

HARNESS = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="vmc-pil-")
atexit.register(shutil.rmtree, TMP, True)
FILL = (124, 116, 104)
NAMES = ["autocontrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add", "color", "contrast",
         "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y"]
random.seed(0)


def rand_img(w, h, mode):
    c, ph, b = (3 if mode == "RGB" else 1), random.random() * 6, bytearray()
    for y in range(h):
        for x in range(w):
            for k in range(c):
                v = 128 + 90 * math.sin(0.11 * x * (k + 1) + ph) * math.cos(0.07 * y + k) + random.randint(-30, 30)
                b.append(max(0, min(255, int(v))))
    return Image.frombytes(mode, (w, h), bytes(b))


def run(img, args):
    inp, out = os.path.join(TMP, "in.raw"), os.path.join(TMP, "out.raw")
    with open(inp, "wb") as f:
        f.write(img.tobytes())
    subprocess.check_call([HARNESS, inp, str(img.size[0]), str(img.size[1]), str(len(img.getbands())), out] + [str(a) for a in args])
    with open(out, "rb") as f:
        return f.read()


def pil_ra(img, op, level, sign):   # timm's calls for the rand-*-inc1 ops
    f = level / 10
    if op == 0: return ImageOps.autocontrast(img)
    if op == 1: return ImageOps.equalize(img)
    if op == 2: return ImageOps.invert(img)
    if op == 3: return img.rotate(sign * f * 30, resample=Image.BICUBIC, fillcolor=FILL)
    if op == 4: return ImageOps.posterize(img, 4 - int(f * 4))
    if op == 5: return ImageOps.solarize(img, 256 - int(f * 256))
    if op == 6:
        lut = [min(255, i + int(f * 110)) if i < 128 else i for i in range(256)]
        return img.point(lut * 3)
    fac = 1.0 + sign * f * 0.9
    if op == 7: return ImageEnhance.Color(img).enhance(fac)
    if op == 8: return ImageEnhance.Contrast(img).enhance(fac)
    if op == 9: return ImageEnhance.Brightness(img).enhance(fac)
    if op == 10: return ImageEnhance.Sharpness(img).enhance(fac)
    m = {11: (1, sign * f * 0.3, 0, 0, 1, 0), 12: (1, 0, 0, sign * f * 0.3, 1, 0),
         13: (1, 0, sign * f * 0.45 * img.size[0], 0, 1, 0), 14: (1, 0, 0, 0, 1, sign * f * 0.45 * img.size[1])}[op]
    return img.transform(img.size, Image.AFFINE, m, resample=Image.BICUBIC, fillcolor=FILL)


def maxdiff(a, b):
    return 256 if len(a) != len(b) else max((abs(x - y) for x, y in zip(a, b)), default=0)


resize_tol = 1 if int(PIL.__version__.split(".")[0]) >= 13 else 0
failures = 0
for t in range(48):
    w, h = random.randint(20, 90), random.randint(20, 90)
    mode = "RGB" if t % 3 else "L"
    img = rand_img(w, h, mode)
    ow, oh = random.randint(5, 120), random.randint(5, 120)
    box = (0, 0, w, h) if t < 4 else (random.uniform(0, w / 3), random.uniform(0, h / 3), random.uniform(2 * w / 3, w), random.uniform(2 * h / 3, h))
    d = maxdiff(run(img, ["resize", ow, oh, *box]), img.resize((ow, oh), Image.BICUBIC, box=box).tobytes())
    if d > resize_tol:
        failures += 1
        print(f"FAIL resize {mode} {w}x{h} box {box} -> {ow}x{oh}: max diff {d}")
for op in range(15):
    for t in range(4):
        img = rand_img(random.randint(20, 60), random.randint(20, 60), "RGB")
        level, sign = random.uniform(0, 10), random.choice([-1, 1])
        d = maxdiff(run(img, ["ra", op, level, sign]), pil_ra(img, op, level, sign).tobytes())
        if d:
            failures += 1
            print(f"FAIL {NAMES[op]} level {level:.2f} sign {sign}: max diff {d}")
# JPEG decoding: Pillow's libjpeg (islow DCT, fancy upsampling) and turbojpeg with default flags agree exactly;
# with draft() (DCT scaling) too. 4:2:0 and 4:4:4 colour, and grayscale.
for t, (mode, sub) in enumerate([("RGB", 2), ("RGB", 0), ("L", 0), ("RGB", 1)]):
    img = rand_img(random.randint(40, 130), random.randint(40, 130), mode)
    path = os.path.join(TMP, f"t{t}.jpg")
    img.save(path, quality=90, subsampling=sub)
    for denom in (1, 2, 4):
        out = os.path.join(TMP, "dec.raw")
        dims = subprocess.check_output([HARNESS, path, "-", "-", "-", out, "decode", str(denom)]).split()
        ref = Image.open(path)
        if denom > 1:
            ref.draft(ref.mode, (ref.size[0] // denom, ref.size[1] // denom))
        ref = ref.convert(mode)
        with open(out, "rb") as f:
            d = maxdiff(f.read(), ref.tobytes())
        if d or (int(dims[0]), int(dims[1])) != ref.size:
            failures += 1
            print(f"FAIL JPEG {mode} subsampling {sub} 1/{denom}: max diff {d}, {dims} vs {ref.size}")
# CMYK JPEG (ImageNet has a few): PIL reads them Adobe-inverted and converts with cmyk2rgb
cmyk = Image.frombytes("CMYK", (40, 30), bytes(random.randint(0, 255) for _ in range(40 * 30 * 4)))
path, out = os.path.join(TMP, "cmyk.jpg"), os.path.join(TMP, "dec.raw")
cmyk.save(path, quality=95)
subprocess.check_output([HARNESS, path, "-", "-", "-", out, "decode", "1"])
with open(out, "rb") as f:
    d = maxdiff(f.read(), Image.open(path).convert("RGB").tobytes())
if d:
    failures += 1
    print(f"FAIL CMYK JPEG: max diff {d}")
# PNG in the modes ImageFolder meets: PIL's convert('RGB') drops alpha and expands palettes, like libpng's expand
for mode in ("RGB", "L", "RGBA", "LA", "P"):
    img = rand_img(33, 21, "RGB")
    img = img.convert(mode) if mode != "P" else img.quantize(37)
    if mode == "P":
        img.info["transparency"] = 3
    path, out = os.path.join(TMP, f"m{mode}.png"), os.path.join(TMP, "dec.raw")
    img.save(path)
    subprocess.check_output([HARNESS, path, "-", "-", "-", out, "decode", "1"])
    ref = Image.open(path)
    ref = ref.convert("L" if ref.mode in ("L", "LA") else "RGB")
    with open(out, "rb") as f:
        d = maxdiff(f.read(), ref.tobytes())
    if d:
        failures += 1
        print(f"FAIL PNG {mode}: max diff {d}")
print(f"Pillow {PIL.__version__}: 5 PNG modes, 13 JPEG decodes (exact), 48 resizes (tolerance {resize_tol}), 60 RandAugment ops (exact): {failures} failed")
sys.exit(1 if failures else 0)
