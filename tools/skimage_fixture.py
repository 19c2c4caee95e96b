"""Writes PNG image pairs and scikit-image's PSNR / SSIM / MSE of each to
java/src/test/resources/skimage/ (expected.json): the fixture ImageMetricsTest checks our metrics
against. Run with scikit-image installed:  python tools/skimage_fixture.py
"""
import json
import os

import numpy as np
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

OUT = os.path.join(os.path.dirname(__file__), "..", "java", "src", "test", "resources", "skimage")
rng = np.random.default_rng(20261125)


def smooth(h, w, c):
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img = np.stack([base + 20 * k for k in range(c)], axis=-1) if c > 1 else base
    return np.clip(img, 0, 255).astype(np.uint8)


def noisy(img, sigma):
    return np.clip(img.astype(np.float64) + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


cases = []
for h, w in [(7, 7), (28, 28), (17, 33), (48, 64), (128, 128)]:
    for c in (1, 3):
        shape = (h, w) if c == 1 else (h, w, c)
        cases.append(("noise", rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)))
        s = smooth(h, w, c)
        cases.append(("smooth+noise2", s, noisy(s, 2)))
        cases.append(("smooth+noise20", s, noisy(s, 20)))
        cases.append(("identical", s, s.copy()))
cases.append(("constant", np.full((28, 28), 7, np.uint8), np.full((28, 28), 9, np.uint8)))
cases.append(("extremes", np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)))
cases.append(("one-pixel", np.full((28, 28), 100, np.uint8), np.where(np.arange(784).reshape(28, 28) == 400, 101, 100).astype(np.uint8)))

os.makedirs(OUT, exist_ok=True)
expected = []
for i, (kind, a, b) in enumerate(cases):
    fa, fb = f"pair{i:02d}_a.png", f"pair{i:02d}_b.png"
    Image.fromarray(a).save(os.path.join(OUT, fa))
    Image.fromarray(b).save(os.path.join(OUT, fb))
    kw = {"channel_axis": -1} if a.ndim == 3 else {}
    with np.errstate(divide="ignore"):
        psnr = peak_signal_noise_ratio(a, b, data_range=255)
    expected.append({
        "kind": kind, "a": fa, "b": fb,
        "psnr": None if np.isinf(psnr) else float(psnr),
        "ssim": float(structural_similarity(a, b, data_range=255, **kw)),
        "mse": float(mean_squared_error(a, b)),
    })
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"skimage": __import__("skimage").__version__, "pairs": expected}, f, indent=1)
print(len(expected), "pairs written to", os.path.abspath(OUT))
