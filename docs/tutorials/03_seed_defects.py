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
# # 3. What went wrong in the five seed experiments
#
# digitnet grew out of five classic "neural network from scratch" programs (the *seeds*).
# Each trains a network on MNIST and reports a figure, and each has defects: some cost
# accuracy, some cost time, one kept its program from running at all. digitnet keeps them
# as recipes (`digitnet reproduce seed-002` runs one as the seed did, `--improved` with the
# defects fixed; the measured table is `docs/reproduction.md`). This tutorial isolates one
# defect of each seed and *measures* it, on a small part of MNIST, with the engine's own
# parts and the seeds' quirks (`digitnet.quirks`), which are components like any other.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from digitnet.data import Normalizer, load_mnist, select_digits
from digitnet.data.scaling import column_zscore, minmax_batched
from digitnet.nn import (
    BinaryCrossEntropy,
    Linear,
    MeanSquaredError,
    Sequential,
    SoftmaxCrossEntropy,
    check_model_gradients,
    mlp,
    optim,
)
from digitnet.quirks import (
    RoundedSigmoid,
    ScalarBiasLinear,
    UnclippedBinaryCrossEntropy,
    UnstableSoftmaxCrossEntropy,
)
from digitnet.recipes import load_recipe
from digitnet.train import fit

SMALL = os.environ.get("DIGITNET_TUTORIAL_SMALL") == "1"
data = load_mnist(progress=False)
n = 6_000 if SMALL else 30_000
x_train, y_train, x_test, y_test = data.x_train[:n], data.y_train[:n], data.x_test, data.y_test
measured: dict[str, tuple[float, float]] = {}  # seed -> (with the defect, without it)


def accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x).argmax(axis=1) == y))


for name in ("seed-000", "seed-001", "seed-002", "seed-003", "seed-004"):
    print(f"{name}: {load_recipe(name).title}; reports {load_recipe(name).seed['reports']}")

# %% [markdown]
# ## seed-000: a step size that depends on the layer, and a log of zero
#
# Seed 000 (784-16-16-1, zeros against ones, full-batch gradient descent) sums each
# gradient over the samples and divides it by the layer's *input width* instead of the
# number of samples. The step each layer really takes is the learning rate times
# $n / \text{fan-in}$: a different step for every layer, and a different one again whenever
# the training set changes size.

# %%
x01, y01 = select_digits(data.x_train, data.y_train, (0, 1))
n01 = len(x01)
for layer, fan_in in (("first (784 -> 16)", 784), ("second (16 -> 16)", 16), ("output (16 -> 1)", 16)):
    print(f"{layer:<18} fan-in {fan_in:>3}: step = lr x {n01 / fan_in:,.0f}")

# %% [markdown]
# With MNIST's training zeros and ones, the first layer moves 16 times the learning rate and
# the other two 792 times: that is why the seed's learning rate is the odd 0.0005. Its loss
# has a second defect, the log of a probability that can be exactly 1:

# %%
confident = np.array([[1.0]], dtype=np.float32)  # a sigmoid output that rounded to exactly 1
print("seed's loss, confidently wrong:", UnclippedBinaryCrossEntropy().forward(confident, np.array([0])))
print("on the logit (z = 40):          ", BinaryCrossEntropy().forward(np.array([[40.0]]), np.array([0])))

# %% [markdown]
# ## seed-001: a derivative at the wrong point, and test images left unscaled
#
# Seed 001's sigmoid takes its derivative at $z$ *rounded to an integer*. Tutorial 1's
# gradient check catches it at once:

# %%
rng = np.random.default_rng(0)
net = Sequential([Linear(6, 4, rng=rng, dtype=np.float64), RoundedSigmoid(),
                  Linear(4, 3, rng=rng, dtype=np.float64)])
errors = check_model_gradients(net, SoftmaxCrossEntropy(), rng.normal(size=(5, 6)), np.arange(5) % 3)
print(f"worst relative error of its gradient: {max(errors.values()):.2f} (a correct layer: about 1e-9)")

z = np.linspace(-4, 4, 400)
s = 1 / (1 + np.exp(-z))
s_round = 1 / (1 + np.exp(-np.round(z)))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(z, s * (1 - s), label="sigmoid'(z)")
ax.plot(z, s_round * (1 - s_round), label="seed 001: sigmoid'(round(z))")
ax.set_xlabel("z")
ax.legend()
ax.set_title("The derivative seed 001 back-propagates")
plt.show()

# %% [markdown]
# Its other defect is in the data: training images are min-max scaled (with statistics per
# position in the batch), but the test images go into the network as raw 0-255 values. A
# sigmoid network trained on inputs in [0, 1] and then shown inputs 255 times larger:

# %%
model = mlp([784, 100, 10], activation="sigmoid", rng=0)
scaled = minmax_batched(x_train, 100)
fit(model, SoftmaxCrossEntropy(), optim.Adam(2e-3), scaled, y_train, epochs=2, batch_size=100, progress=False)
unscaled = accuracy(model, x_test.astype(np.float32), y_test)
rescaled = accuracy(model, x_test / np.float32(255), y_test)  # what the min-max statistics amount to
measured["seed-001"] = (unscaled, rescaled)
print(f"test accuracy with the test images as 0-255: {unscaled:.4f}; scaled to [0, 1]: {rescaled:.4f}")
for title, inputs in (("as 0-255", x_test.astype(np.float32)), ("scaled", x_test / np.float32(255))):
    hidden = model.activations(inputs[:1000])[1]  # the hidden sigmoid layer's outputs
    print(f"hidden units saturated (below 0.01 or above 0.99), test images {title}: "
          f"{np.mean((hidden < 0.01) | (hidden > 0.99)):.0%}")

# %% [markdown]
# It costs less accuracy than one would think: most hidden units saturate, but a saturated
# sigmoid still says on which side of its boundary the input lies, and that is much of what
# the next layer reads. What is lost is everything in between, the network's confidence.

# %% [markdown]
# ## seed-002: a softmax that overflows, and one bias gradient for all
#
# Seed 002 computes $e^z / \sum e^z$ without subtracting the largest logit first. In
# float32, $e^{89}$ is already infinite, and the loss becomes NaN:

# %%
logits = np.array([[90.0, 10.0, 0.0]], dtype=np.float32)
print("seed's softmax cross-entropy:", UnstableSoftmaxCrossEntropy().forward(logits, np.array([0])))
print("stable (z - max(z)):         ", SoftmaxCrossEntropy().forward(logits, np.array([0])))

# %% [markdown]
# Its affine layers also sum the bias gradient over all units into one number, so every
# bias of a layer moves by the same amount and the biases never learn anything per unit.
# Before a softmax it is worse: the gradients $p - y$ sum to zero over the classes, so that
# one number is always 0 and the output layer's biases never move at all:

# %%
layer = ScalarBiasLinear(784, 10, rng=np.random.default_rng(0))
start = layer.params["bias"].copy()
seed_net, seed_loss = Sequential([layer]), SoftmaxCrossEntropy()
fit(seed_net, seed_loss, optim.SGD(0.1), x_train, y_train, epochs=1, batch_size=n,
    preprocess=Normalizer("unit").fit(x_train), progress=False)
moved = layer.params["bias"] - start
print("how far each bias moved:", np.round(moved, 4), f"(spread {moved.std():.1e})")

# %% [markdown]
# ## seed-003: a shape error, and test data scaled with their own statistics
#
# Seed 003 never ran: its code expects features-by-samples arrays `(784, n)` and was fed
# samples-by-features `(n, 784)`, and the first matrix product failed. digitnet has one
# convention, samples as rows, and every layer says what it expected:

# %%
try:
    Linear(784, 128, rng=np.random.default_rng(0)).forward(x_train[:100].T.astype(np.float32))
except ValueError as exc:
    print("ValueError:", exc)

# %% [markdown]
# Once made to run, it standardises each image column with the statistics of whatever set
# it is scaling: the test set is scaled with the *test* set's own mean and spread, so one
# pixel value means something slightly different in training and in testing. The columns'
# statistics differ between the sets:

# %%
def column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = x.reshape(-1, 28, 28).astype(np.float64)
    return images.mean(axis=(0, 1)), images.std(axis=(0, 1))


(m_train, s_train), (m_test, s_test) = column_stats(x_train), column_stats(x_test)
print(f"largest difference between the sets: mean {np.abs(m_train - m_test).max():.2f}, "
      f"std {np.abs(s_train - s_test).max():.2f} (pixel units)")
model = mlp([784, 128, 10], activation="relu", rng=0)
fit(model, SoftmaxCrossEntropy(), optim.Adam(1e-3), column_zscore(x_train), y_train, epochs=2,
    batch_size=128, progress=False)
own = accuracy(model, column_zscore(x_test), y_test)
images = x_test.reshape(-1, 28, 28).astype(np.float32)
train_scaled = (images - m_train) / np.where(s_train == 0, 1, s_train)
with_train = accuracy(model, train_scaled.reshape(len(x_test), -1).astype(np.float32), y_test)
measured["seed-003"] = (own, with_train)
print(f"test accuracy, test set scaled with its own statistics: {own:.4f}; with the training set's: "
      f"{with_train:.4f}")

# %% [markdown]
# The difference is small here. What cost seed 003 most was time: 1,000 full-batch steps
# of plain gradient descent, where minibatches make 470 steps in each pass over the data:

# %%
seed_003 = load_recipe("seed-003")
print(f"the seed's 1,000 full-batch steps: {seed_003.seed['seconds']:.0f} s (as measured for the recipe); "
      f"the improved recipe trains {seed_003.improved.training.epochs} epochs of minibatches of "
      f"{seed_003.improved.training.batch_size}")

# %% [markdown]
#
# ## seed-004: mean squared error on sigmoid outputs
#
# Seed 004 trains sigmoid outputs against one-hot targets with the squared error. Its
# gradient with respect to an output's logit is $2(a - y)\,a(1 - a)$: when the network is
# *confidently wrong* ($a$ near 1 for a 0 target), $a(1 - a)$ is near 0, and so is the
# gradient. Softmax cross-entropy's is $p - y$: largest exactly when it is most wrong.

# %%
z = np.linspace(-8, 8, 400)
a = 1 / (1 + np.exp(-z))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(z, np.abs(2 * a * a * (1 - a)), label="MSE on a sigmoid: |2 a a(1 - a)|")
ax.plot(z, a, label="cross-entropy: |a - 0|")
ax.set_xlabel("logit z of an output whose target is 0")
ax.set_ylabel("|dL/dz|")
ax.legend()
ax.set_title("How hard each loss pushes a wrong output back")
plt.show()

# %%
results = {}
for label, loss, out_act in (("mse", MeanSquaredError("sample"), "sigmoid"),
                             ("cross_entropy", SoftmaxCrossEntropy(), None)):
    model = mlp([784, 50, 10], activation="sigmoid", output_activation=out_act, rng=0)
    scale = Normalizer("symmetric").fit(x_train)
    fit(model, loss, optim.SGD(0.1), x_train, y_train, epochs=3, batch_size=100, preprocess=scale,
        progress=False)
    results[label] = accuracy(model, scale.transform(x_test), y_test)
measured["seed-004"] = (results["mse"], results["cross_entropy"])
print(f"784-50-10, 3 epochs of SGD: MSE on sigmoids {results['mse']:.4f}, "
      f"softmax cross-entropy {results['cross_entropy']:.4f}")

# %% [markdown]
# ## The measurements side by side

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2))
names = list(measured)
ax.bar(np.arange(len(names)) - 0.2, [measured[k][0] for k in names], 0.4, label="with the defect")
ax.bar(np.arange(len(names)) + 0.2, [measured[k][1] for k in names], 0.4, label="fixed")
ax.set_xticks(range(len(names)), ["seed-001\ntest images unscaled", "seed-003\nown statistics",
                                  "seed-004\nMSE on sigmoids"])
ax.set_ylabel("test accuracy")
ax.set_ylim(0, 1)
ax.legend(loc="lower right")
ax.set_title(f"One defect at a time, on {n:,} training images")
plt.show()

# %% [markdown]
# The recipes put every defect of a seed together, at the seed's full size, and compare with
# what the seed reported: `digitnet reproduce --all` writes that table.
