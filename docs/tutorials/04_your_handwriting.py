# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Your own handwriting: preparing an image like MNIST, the web page, robustness
#
# A network trained on MNIST has only ever seen one kind of picture: a white digit on black,
# its longer side 20 pixels, its centre of mass at the centre of a 28x28 field. A digit
# drawn on a canvas or photographed on paper is none of these, and read as it is, it is
# read badly. This tutorial prepares an image the way MNIST was prepared, step by step,
# sends it to the web app's API, and then measures how much shifting or rotating a digit
# costs the network, and how much of that the preparation undoes.

# %%
import io
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image as PILImage

from digitnet.data import load_mnist
from digitnet.data.images import center_by_mass, crop_to_ink, fit_box, ink_image, mnist_like
from digitnet.estimator import MLPClassifier
from digitnet.web.app import create_app

with warnings.catch_warnings():  # the test client's own note that it will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SMALL = os.environ.get("DIGITNET_TUTORIAL_SMALL") == "1"
data = load_mnist(progress=False)
n = 6_000 if SMALL else len(data.x_train)
clf = MLPClassifier(hidden=(256,), epochs=3 if SMALL else 10, seed=0).fit(data.x_train[:n], data.y_train[:n])
print(f"trained on {n:,} images: test accuracy {clf.score(data.x_test, data.y_test):.4f}")

# %% [markdown]
# ## A digit "photographed on paper"
#
# To know the right answer, take a digit whose label we know, the first test image, and
# turn it into what a phone photo of a note looks like: dark ink on light, slightly uneven
# paper, six times larger, off-centre in a 300x400 picture.

# %%
digit = data.x_test[0].reshape(28, 28)
print("the test set labels it", data.y_test[0], "(the network never trained on it)")
ink = PILImage.fromarray(255 - digit).resize((168, 168), PILImage.BICUBIC)
paper = PILImage.new("L", (300, 400), 255)
paper.paste(ink, (110, 190))
noise = np.random.default_rng(0).normal(0, 2, (400, 300))
shade = np.linspace(-6, 6, 300)[None, :]
photo = np.clip(np.asarray(paper, dtype=np.float64) * 0.88 + noise + shade, 0, 255).astype(np.uint8)
png = io.BytesIO()
PILImage.fromarray(photo).save(png, format="PNG")
png = png.getvalue()

# %% [markdown]
# ## Preparing it like MNIST
#
# `mnist_like` does four things, each a function of `digitnet.data.images`: make the ink
# white on black (inverting a light background), crop to the ink, scale the longer side to
# 20 pixels, and place it in 28x28 with its centre of mass at the centre.

# %%
gray = photo.astype(np.float64)
steps = [("the photo", gray), ("ink: white on black", ink_image(gray))]
steps.append(("cropped to the ink", crop_to_ink(steps[-1][1])))
steps.append(("longer side 20 px", fit_box(steps[-1][1])))
steps.append(("centred by mass, 28x28", center_by_mass(steps[-1][1])))
fig, axes = plt.subplots(1, len(steps), figsize=(11, 2.8))
for ax, (title, image) in zip(axes, steps, strict=True):
    ax.imshow(image, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()
prepared = mnist_like(photo)  # the four steps in one call (it also takes PNG or JPEG bytes, or a file)
assert np.array_equal(prepared, np.clip(np.rint(steps[-1][1]), 0, 255).astype(np.uint8))

# %% [markdown]
# `ink_image` counts as ink anything at least a tenth as strong as the darkest stroke, after
# taking away the paper's level (the median of the border). That is why the paper here is
# only slightly uneven: a photo with a heavy shadow or speckles that strong keeps them as
# "ink", and the crop then keeps the whole picture. Crop such a photo to the digit first.
#
# What difference does it make? The same photo shrunk straight to 28x28, without any of
# the steps, against the prepared one:

# %%
naive = np.asarray(PILImage.fromarray(photo).resize((28, 28), PILImage.BILINEAR), dtype=np.uint8)
for title, image in (("shrunk as it is", naive), ("prepared like MNIST", prepared)):
    p = clf.predict_proba(image.reshape(1, -1))[0]
    print(f"{title:<20} predicted {p.argmax()} with probability {p.max():.2f}")

# %% [markdown]
# ## The web page
#
# `digitnet serve RUN_DIR` serves a page where you draw with a mouse or finger; every stroke
# sends the canvas as a PNG to `POST /api/predict`, which prepares it with the same
# `mnist_like` and answers with the digit, the probabilities, the 28x28 image the network
# saw and the hidden layer's activations. Here the same app is called in-process, with the
# photo's PNG bytes, exactly as the page calls it:

# %%
client = TestClient(create_app(clf.classifier_))
answer = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"}).json()
print({k: answer[k] for k in ("digit", "name")}, "probabilities:", np.round(answer["probabilities"], 3))
fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.6), gridspec_kw={"width_ratios": [1, 2.5]})
left.imshow(np.array(answer["image"]), cmap="gray")
left.set_title("what the network saw")
left.axis("off")
right.bar(answer["classes"], answer["probabilities"])
right.set_xticks(answer["classes"])
right.set_title("the page's probability bars")
plt.show()

# %% [markdown]
# ## Robustness: shifted and rotated digits
#
# The network has no notion that a digit moved two pixels to the left is the same digit:
# each input pixel has its own weights. Shift the test digits by a few pixels, or rotate
# them, and measure the accuracy. Then prepare each shifted digit again with `mnist_like`,
# which centres it by its mass, the way a drawing from the page is prepared.

# %%
k = 500 if SMALL else 2_000
x, y = data.x_test[:k], data.y_test[:k]
images = x.reshape(-1, 28, 28)


def shifted(images: np.ndarray, dx: int) -> np.ndarray:
    """Each image moved dx pixels to the right (what falls off the edge is lost)."""
    out = np.zeros_like(images)
    if dx >= 0:
        out[:, :, dx:] = images[:, :, : 28 - dx]
    else:
        out[:, :, :dx] = images[:, :, -dx:]
    return out


def rotated(images: np.ndarray, degrees: float) -> np.ndarray:
    return np.stack([np.asarray(PILImage.fromarray(im).rotate(degrees, PILImage.BILINEAR)) for im in images])


def accuracy(images: np.ndarray) -> float:
    return clf.score(images.reshape(len(images), -1), y)


def reprepared(images: np.ndarray) -> np.ndarray:
    return np.stack([mnist_like(im) if im.any() else im for im in images])


shifts = list(range(-6, 7, 2))
angles = list(range(-60, 61, 15))
by_shift = [accuracy(shifted(images, dx)) for dx in shifts]
by_shift_prepared = [accuracy(reprepared(shifted(images, dx))) for dx in shifts]
by_angle = [accuracy(rotated(images, a)) for a in angles]
by_angle_prepared = [accuracy(reprepared(rotated(images, a))) for a in angles]

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
left.plot(shifts, by_shift, "o-", label="as shifted")
left.plot(shifts, by_shift_prepared, "s-", label="prepared again (mnist_like)")
left.set_xlabel("shift (pixels, + is to the right)")
left.set_ylabel(f"accuracy on {k:,} test digits")
left.legend()
left.set_title("Shifted digits")
right.plot(angles, by_angle, "o-", label="as rotated")
right.plot(angles, by_angle_prepared, "s-", label="prepared again (mnist_like)")
right.set_xlabel("rotation (degrees, + is anticlockwise)")
right.legend()
right.set_title("Rotated digits")
plt.tight_layout()
plt.show()
right4, deg45 = shifts.index(4), angles.index(45)
print(f"4 px to the right: {by_shift[right4]:.3f} as shifted, {by_shift_prepared[right4]:.3f} prepared "
      f"again; 45 degrees: {by_angle[deg45]:.3f} as rotated, {by_angle_prepared[deg45]:.3f} prepared again")

# %% [markdown]
# Centring by mass undoes a shift almost completely: that is why the page can read a digit
# drawn anywhere on its canvas. Nothing undoes a rotation: the network only knows the
# slants it was shown. Training on shifted and rotated copies (data augmentation), or a
# convolutional network, which shares its weights across positions, are the usual answers.
