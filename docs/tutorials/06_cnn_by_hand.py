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
# # 6. A CNN by hand: convolution as a loop, as a matrix product, and as a layer
#
# Tutorial 5 ended where the MLP stops being enough: a fully connected layer has one weight
# per pixel per unit, so a stroke at one place and the same stroke two pixels to the right
# are, to it, unrelated inputs that it has to learn separately. A convolution slides one
# small kernel over the whole image instead: the same nine weights look at every 3x3 window,
# so a feature learned anywhere is detected everywhere, with a fraction of the weights.
#
# This tutorial computes a convolution three ways (a plain double loop over its formula,
# im2col and one matrix product, the engine's `Conv2D`) and checks that they agree, checks
# `Conv2D`'s backward pass against finite differences, looks at what batch norm does in
# training and in evaluation, and then trains a small CNN on MNIST beside an MLP on the same
# images. With `DIGITNET_TUTORIAL_SMALL=1` (as in CI) it trains on a subset in seconds.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from digitnet import plots
from digitnet.classifier import Classifier
from digitnet.data import Normalizer, load_mnist, train_valid_split
from digitnet.nn import (
    BatchNorm,
    Conv2D,
    Flatten,
    Linear,
    MaxPool2D,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    Unflatten,
    check_model_gradients,
    mlp,
    optim,
)
from digitnet.nn.conv import conv2d_reference, im2col
from digitnet.nn.gradcheck import numerical_gradient, relative_error
from digitnet.train import fit

SMALL = os.environ.get("DIGITNET_TUTORIAL_SMALL") == "1"
data = load_mnist(progress=False)
rng = np.random.default_rng(0)
print(data.source)

# %% [markdown]
# ## A convolution, as its formula
#
# A 3x3 kernel $K$ slid over an image $x$ gives, at each position $(i, j)$ where it fits, the
# weighted sum of the window under it:
#
# $$y[i, j] = \sum_{p=0}^{2} \sum_{q=0}^{2} K[p, q] \; x[i + p, j + q]$$
#
# (strictly a cross-correlation: the kernel is not flipped, as in every framework). On a
# 28x28 digit the kernel fits at 26x26 positions. As code, that is a double loop over the
# positions. The kernel below is Sobel's: it subtracts the column of pixels to the left of
# the centre from the column to its right, so it answers where the ink changes from left to
# right, a vertical edge.

# %%
digit = data.x_test[0].reshape(28, 28) / 255.0  # the first test image, in [0, 1]
sobel_x = np.array([[-1.0, 0.0, 1.0],
                    [-2.0, 0.0, 2.0],
                    [-1.0, 0.0, 1.0]])           # vertical edges
sobel_y = sobel_x.T.copy()                       # horizontal edges


def convolve_loop(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """y[i, j] = sum_{p, q} kernel[p, q] * image[i + p, j + q], one position at a time."""
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(kernel * image[i:i + kh, j:j + kw])
    return out


edges_loop = convolve_loop(digit, sobel_x)
print("label", data.y_test[0], "| image", digit.shape, "-> output", edges_loop.shape)

# %% [markdown]
# ## The same, as one matrix product (im2col)
#
# The loop does the same small multiply-and-add 676 times. im2col turns it into one product:
# copy every window into a column of a matrix, `cols[(p, q), (i, j)] = x[i + p, j + q]`, nine
# rows (one per kernel weight) by 676 columns (one per position). The sum over the window is
# then the inner dimension of `K.reshape(1, 9) @ cols`. With $F$ kernels and $C$ input
# channels the weights are an $F \times C \cdot 9$ matrix and the whole layer, for the whole
# batch, is one call to BLAS: that is how `Conv2D` computes. `im2col` in `digitnet.nn.conv`
# takes images as `(n, channels, height, width)`, with the kernel size, stride and padding.

# %%
cols = im2col(digit[None, None], kernel=(3, 3), stride=(1, 1), padding=(0, 0))
edges_product = (sobel_x.reshape(1, 9) @ cols).reshape(26, 26)
print("columns", cols.shape, "| largest difference from the loop:", np.abs(edges_product - edges_loop).max())
assert np.allclose(edges_product, edges_loop)

# the window at position (5, 10) is column 5 * 26 + 10
assert np.array_equal(cols[:, 5 * 26 + 10], digit[5:8, 10:13].ravel())

images = data.x_test[:100].reshape(100, 1, 28, 28) / 255.0
started = time.perf_counter()
by_loop = np.stack([convolve_loop(image[0], sobel_x) for image in images])
loop_seconds = time.perf_counter() - started
started = time.perf_counter()
by_product = (sobel_x.reshape(1, 9) @ im2col(images, (3, 3), (1, 1), (0, 0))).reshape(100, 26, 26)
product_seconds = time.perf_counter() - started
assert np.allclose(by_loop, by_product)
print(f"100 digits: double loop {loop_seconds * 1e3:.0f} ms, im2col and one product "
      f"{product_seconds * 1e3:.1f} ms ({loop_seconds / product_seconds:.0f} times faster)")

# %% [markdown]
# The engine's `Conv2D` layer is the same computation with the kernels as its `weight`
# parameter, `(filters, channels, 3, 3)`. Given the two Sobel kernels as its weights it
# computes both edge maps at once, and `conv2d_reference` (the formula as six nested loops,
# which the test suite compares `Conv2D` with) agrees too:

# %%
conv = Conv2D(1, 2, kernel_size=3, bias=False, dtype=np.float64)
conv.params["weight"][:, 0] = sobel_x, sobel_y
conv.train(False)
edges = conv.forward(digit[None, None])[0]  # (2, 26, 26)
reference = conv2d_reference(digit[None, None], conv.params["weight"], None, (1, 1), (0, 0))[0]
print(conv.brief(), "->", edges.shape)
assert np.allclose(edges[0], edges_loop) and np.allclose(edges, reference)

fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
panels = [(digit, "the digit", "gray_r"), (edges[0], "vertical edges (Sobel x)", "RdBu_r"),
          (edges[1], "horizontal edges (Sobel y)", "RdBu_r"),
          (np.hypot(edges[0], edges[1]), "edge strength", "inferno")]
for ax, (picture, title, cmap) in zip(axes, panels, strict=True):
    top = np.abs(picture).max()
    signed = cmap == "RdBu_r"  # edge maps: white at 0, on a scale symmetric about it
    ax.imshow(picture, cmap=cmap, vmin=-top if signed else None, vmax=top if signed else None)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Red where the ink starts (going right, or down), blue where it ends: the vertical-edge
# kernel lights up both sides of the 7's slanted stroke but of its top bar only the ends,
# while the horizontal-edge kernel finds the bar's upper and lower edges in full. A CNN
# learns kernels like these from the data rather than being given them.
#
# ## The backward pass, checked
#
# Backward, with `G` the gradient of the loss with respect to the outputs laid out as
# `(F, n*Ho*Wo)`: `dW = G @ cols.T`, `db` the sum of `G` over every position, and for the
# input col2im of `W.T @ G` (each column entry added back to the pixel it was copied from),
# or at stride 1, where that is cheaper, a convolution of `G` with the kernel turned by 180
# degrees. The finite-difference check of tutorial 1 applies as it is: two tiny networks in
# float64 on a batch of three 2-channel 6x6 inputs, one that keeps the image size (padding 1,
# the input gradient by the turned kernel) and one with stride 2 (the input gradient by
# col2im).

# %%
x_tiny = rng.normal(size=(3, 2, 6, 6))
y_tiny = np.array([0, 2, 1])
for conv_layer, features in ((Conv2D(2, 2, 3, padding=1, rng=rng, dtype=np.float64), 2 * 6 * 6),
                              (Conv2D(2, 4, 3, stride=2, rng=rng, dtype=np.float64), 4 * 2 * 2)):
    tiny = Sequential([conv_layer, ReLU(), Flatten(), Linear(features, 3, rng=rng, dtype=np.float64)],
                      input_shape=(2, 6, 6))
    errors = check_model_gradients(tiny, SoftmaxCrossEntropy(), x_tiny, y_tiny)
    print(f"{conv_layer.brief():<36} max relative error {max(errors.values()):.1e}  "
          + ", ".join(f"{name} {err:.0e}" for name, err in errors.items()))
    assert max(errors.values()) < 1e-5

# %% [markdown]
# Every parameter and the input agree with finite differences to about $10^{-6}$ or better,
# the agreement central differences reach for a correct gradient (a wrong one, as in
# tutorial 1, is off by far more): the gradient is right whichever way the input's is
# computed.
#
# ## Batch norm: batch statistics in training, running statistics in evaluation
#
# `BatchNorm` standardises each channel by the mean and variance of the values it has in the
# batch (over the images and every position), then scales and shifts it by two trained
# parameters, $\gamma$ and $\beta$ (1 and 0 to start with). It also keeps running averages
# of those statistics (momentum 0.1), and in evaluation uses them instead, so that a test
# image's output does not depend on which other images happen to share its batch. A batch
# of 3-channel 4x4 maps with channel means 5, -2, 0.5 and standard deviations 2, 0.5, 3:

# %%
def batch_of_maps(n: int) -> np.ndarray:
    values = rng.normal([5.0, -2.0, 0.5], [2.0, 0.5, 3.0], size=(n, 4, 4, 3))
    return values.transpose(0, 3, 1, 2).astype(np.float32)  # (n, 3, 4, 4)


def channel_stats(maps: np.ndarray) -> str:
    return ("mean " + np.array2string(maps.mean(axis=(0, 2, 3)), precision=2, suppress_small=True)
            + ", std " + np.array2string(maps.std(axis=(0, 2, 3)), precision=2, suppress_small=True))


bn = BatchNorm(3)
batch = batch_of_maps(32)
print("input                    ", channel_stats(batch))
print("training (batch stats)   ", channel_stats(bn.forward(batch)))
print("running mean after 1 step", bn.buffers["running_mean"])
bn.train(False)
print("evaluation, after 1 step ", channel_stats(bn.forward(batch)))

# %% [markdown]
# In training the output is standardised exactly, whatever the input. One step has moved the
# running statistics only a tenth of the way from their start (mean 0, variance 1) towards the
# batch's, so in evaluation the same batch comes out far from standardised. After a few dozen
# training batches they have caught up, and evaluation gives nearly what training does:

# %%
bn.train(True)
for _ in range(60):
    bn.forward(batch_of_maps(32))
print("running mean", bn.buffers["running_mean"], " running var", bn.buffers["running_var"])
bn.train(False)
print("evaluation, after 61 steps", channel_stats(bn.forward(batch)))

# the same image in two different batches: in training its output depends on its batch-mates
def in_two_batches(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The layer's output for ``image`` with seven other images, then with seven different ones."""
    return tuple(bn.forward(np.concatenate([image, batch_of_maps(7)]))[0] for _ in range(2))


one = batch[:1]
for training in (True, False):
    bn.train(training)
    a, b = in_two_batches(one)
    mode = "training:" if training else "evaluation:"
    print(f"{mode:<12} one image's output in two batches differs by up to {np.abs(a - b).max():.3f}")
assert np.array_equal(a, b)

# %% [markdown]
# Its gradient in training has two terms more than a plain scale and shift, because every
# input moves the batch's mean and variance:
#
# $$dx = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}
#        \big(g - \mathrm{mean}(g) - \hat{x}\,\mathrm{mean}(g\,\hat{x})\big)$$
#
# `check_model_gradients` checks in evaluation mode, so here is the training-mode check by
# hand with `numerical_gradient`, on a float64 layer (a random weighting of the outputs as
# the loss):

# %%
bn64 = BatchNorm(3, dtype=np.float64)
maps = batch_of_maps(4).astype(np.float64)
weights = rng.normal(size=maps.shape)
bn64.forward(maps)
dx = bn64.backward(weights)
numeric = numerical_gradient(lambda: float(np.sum(weights * bn64.forward(maps))), maps)
print(f"BatchNorm in training, dx: relative error {relative_error(dx, numeric):.1e}")
assert relative_error(dx, numeric) < 1e-5

# %% [markdown]
# ## A small CNN on MNIST
#
# Two blocks of a 3x3 convolution (padding 1, so the maps keep their size; no bias, since
# batch norm's $\beta$ plays its part), batch norm, ReLU and 2x2 max pooling, which halves the
# maps: 28x28 -> 14x14 -> 7x7. Then `Flatten` and one `Linear` layer to the ten logits. The
# network takes MNIST's rows of 784 pixels (`input_shape=(784,)`), and its first layer,
# `Unflatten`, makes them 1x28x28 images. `Sequential` checks that every layer fits the one
# below and `summary()` lists the shapes:

# %%
c1, c2 = 16, 32
cnn = Sequential([
    Unflatten((1, 28, 28)),
    Conv2D(1, c1, 3, padding=1, bias=False, rng=rng), BatchNorm(c1), ReLU(), MaxPool2D(2),   # c1 @ 14x14
    Conv2D(c1, c2, 3, padding=1, bias=False, rng=rng), BatchNorm(c2), ReLU(), MaxPool2D(2),  # c2 @ 7x7
    Flatten(),
    Linear(c2 * 7 * 7, 10, rng=rng),
], input_shape=(784,))
print(cnn.summary())

# %% [markdown]
# About 20,000 parameters, a tenth of the 784-256-10 MLP's 203,530, and most of them in the
# last layer: the two convolutions together have 4,752 weights. Both networks train the same
# way, with `fit`, on the same images, with the same optimiser and epochs, and 10% of the
# images held out for validation.

# %%
n, epochs = (6_000, 2) if SMALL else (60_000, 5)
x_tr, y_tr, x_val, y_val = train_valid_split(data.x_train[:n], data.y_train[:n], 0.1, stratify=True, seed=0)
scale = Normalizer("zscore").fit(x_tr)
results = {}
for name, model in (("CNN", cnn), ("MLP 784-256-10", mlp([784, 256, 10], activation="relu", rng=0))):
    started = time.perf_counter()
    history = fit(model, SoftmaxCrossEntropy(), optim.Adam(2e-3, schedule="cosine"), x_tr, y_tr,
                  epochs=epochs, batch_size=64, preprocess=scale, validation_data=(x_val, y_val),
                  progress=False)
    seconds = time.perf_counter() - started
    predicted = model.predict(scale.transform(data.x_test)).argmax(axis=1)
    results[name] = (history, np.mean(predicted == data.y_test))
    print(f"{name:<15} {model.num_parameters:>8,} parameters, {epochs} epochs on {len(x_tr):,} images "
          f"in {seconds:5.1f} s: validation accuracy {history.val_accuracy[-1]:.4f}, "
          f"test accuracy {results[name][1]:.4f} ({round((1 - results[name][1]) * 10_000)} errors)")
errors_cnn, errors_mlp = (1 - results["CNN"][1]), (1 - results["MLP 784-256-10"][1])
print(f"the CNN's test errors are {errors_cnn / errors_mlp:.2f} of the MLP's, with a tenth of its weights")

# %%
curves = [(name, history.to_dict()) for name, (history, _) in results.items()]
title = f"The CNN and the MLP on the same {len(x_tr):,} images"
display(Image(plots.plot_validation_curves(curves, title=title)))

# %% [markdown]
# The convolutions pay for their few weights in arithmetic: each kernel is applied at every
# position, so an epoch takes many times the MLP's. What they buy is weight sharing: a
# stroke detector learned in one corner works in every other.
#
# ## What it learned
#
# The first layer's 16 kernels, each 3x3 (red positive, blue negative). After so short a
# training they are rough, but several are already oriented contrasts, positive on one side
# and negative on the other as Sobel's kernels are, at angles of their own, learned from the
# digits alone:

# %%
display(Image(plots.plot_conv_filters(cnn.layers[1].params["weight"])))

# %% [markdown]
# And what each convolution makes of one test digit. A `Classifier` bundles the network with
# its input scaling and classes (what `digitnet train` saves); its `feature_maps` are, for
# every convolution, the maps after its batch norm and ReLU, before pooling. The first layer's
# maps are the whole stroke, or its edges on one side; several of the second layer's, at half
# the resolution and each seeing a 10x10 patch of the digit through the pooling, answer to
# one part of it only: the top bar, or the slanted stroke.

# %%
clf = Classifier(cnn, SoftmaxCrossEntropy(), scale, list(range(10)))
test_digit = data.x_test[:1]
reading = clf.read(test_digit)
print(f"label {data.y_test[0]}, predicted {reading.labels[0]} "
      f"with probability {reading.probabilities[0].max():.3f}")
for maps in reading.feature_maps:
    print(maps.title, maps.maps.shape)
display(Image(plots.plot_feature_maps(test_digit[0], [(m.title, m.maps[0]) for m in reading.feature_maps])))

# %% [markdown]
# ## Where to go next
#
# * `digitnet train --recipe cnn` trains the bigger version of this network (32-32-64-64 3x3
#   convolutions, batch norm, dropout; 468,138 parameters) on all 60,000 images, aiming at
#   99.5% test accuracy; `digitnet train --recipe lenet5` trains LeNet-5 (1998) layer for
#   layer. `digitnet report` then draws the filters and feature maps above for the run, and
#   `digitnet serve` shows the feature maps of the digit you draw.
# * `benchmarks/bench_cnn.py` times both recipes against the same networks in PyTorch, with a
#   profile of where an epoch goes and the floor the matrix products set
#   (`python -m benchmarks.bench_cnn --quick`).
# * Back to tutorial 5: train this CNN on Fashion-MNIST (`load_dataset("fashion-mnist")`, or
#   `digitnet train --recipe cnn --dataset fashion-mnist`) and see how many of the MLP's
#   shirt and coat confusions are left.
