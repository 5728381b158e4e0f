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
# # 1. One neuron, its gradient by hand, and the gradient check
#
# Every network in digitnet is built from one idea: a unit computes a weighted sum of its
# inputs, squashes it, and learns by moving its weights against the gradient of a loss.
# This tutorial does that for a single neuron, with the gradient worked out by hand, and
# then checks the hand-written gradient against finite differences: the check that every
# layer of digitnet passes in its test suite.
#
# Open it as a notebook (`jupytext --to notebook 01_one_neuron.py`, or in Jupyter with the
# jupytext extension) or run it as a script. It needs no data and runs in seconds.

# %%
import matplotlib.pyplot as plt
import numpy as np

from digitnet.nn import BinaryCrossEntropy, Linear, Sequential, check_model_gradients
from digitnet.nn.gradcheck import numerical_gradient, relative_error

rng = np.random.default_rng(0)

# %% [markdown]
# ## The data: two clouds of points
#
# 200 points in the plane, half around (-1, -1) labelled 0 and half around (1, 1) labelled 1.
# `x` has shape `(n, 2)`, one row per sample: the convention everywhere in digitnet.

# %%
n = 200
y = (np.arange(n) % 2).astype(np.float64)           # labels 0, 1, 0, 1, ...
x = rng.normal(0.0, 0.8, size=(n, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)

fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(*x[y == 0].T, s=12, label="class 0")
ax.scatter(*x[y == 1].T, s=12, label="class 1")
ax.set_aspect("equal")
ax.legend()
ax.set_title("The training points")
plt.show()

# %% [markdown]
# ## The neuron and its loss
#
# The neuron computes $z = x \cdot w + b$ and $a = \sigma(z) = 1 / (1 + e^{-z})$, the
# probability it gives to class 1. Its loss on one sample is the binary cross-entropy
# $L = -y \log a - (1 - y) \log (1 - a)$, averaged over the $n$ samples.
#
# The chain rule gives the gradient in three steps:
#
# * $\partial L / \partial a = -y / a + (1 - y) / (1 - a)$
# * $\partial a / \partial z = a (1 - a)$, so their product simplifies to
#   $\partial L / \partial z = a - y$: the error, nothing more
# * $\partial z / \partial w = x$ and $\partial z / \partial b = 1$
#
# Averaged over the samples: $\partial L / \partial w = x^\top (a - y) / n$ and
# $\partial L / \partial b = \mathrm{mean}(a - y)$.

# %%
def forward(w: np.ndarray, b: float, x: np.ndarray) -> np.ndarray:
    """The neuron's output a = sigmoid(x @ w + b), shape (n,)."""
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def loss(w: np.ndarray, b: float) -> float:
    a = forward(w, b, x)
    return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))


def gradient(w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    """dL/dw (2,) and dL/db by hand: the error a - y, times the input, averaged."""
    error = forward(w, b, x) - y
    return x.T @ error / n, float(error.mean())


w, b = rng.normal(0.0, 0.1, size=2), 0.0
print("loss at the start:", round(loss(w, b), 4))

# %% [markdown]
# ## The gradient check
#
# A gradient derived by hand is easy to get subtly wrong (a missing $1/n$, a sign, a
# transpose), and a wrong gradient still trains, just badly. Finite differences catch it:
# nudge each weight by $\pm h$ and see how the loss changes,
# $\partial L / \partial w_i \approx (L(w_i + h) - L(w_i - h)) / 2h$.
# `numerical_gradient` does exactly that, in place, for any array.

# %%
dw, db = gradient(w, b)
b_array = np.array([b])
numeric_w = numerical_gradient(lambda: loss(w, b_array[0]), w)
numeric_b = numerical_gradient(lambda: loss(w, b_array[0]), b_array)
print("by hand:  ", dw, db)
print("numerical:", numeric_w, numeric_b[0])
print("relative error, w:", relative_error(dw, numeric_w), " b:", relative_error(db, numeric_b))
assert relative_error(dw, numeric_w) < 1e-6

# %% [markdown]
# The relative error is around $10^{-9}$: the derivation is right. Here is what a typical
# slip looks like. Forget to divide by $n$ and the check says so at once:

# %%
wrong_dw = x.T @ (forward(w, b, x) - y)
print("forgot the 1/n -> relative error", round(relative_error(wrong_dw, numeric_w), 3))

# %% [markdown]
# ## Training by hand
#
# Gradient descent: step against the gradient, `w -= lr * dw`, a few hundred times.

# %%
lr, losses = 0.5, []
for _ in range(300):
    dw, db = gradient(w, b)
    w, b = w - lr * dw, b - lr * db
    losses.append(loss(w, b))
accuracy = np.mean((forward(w, b, x) > 0.5) == (y == 1))
print(f"after 300 steps: loss {losses[-1]:.4f}, training accuracy {accuracy:.3f}, w = {w}, b = {b:.3f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
left.plot(losses)
left.set_xlabel("step")
left.set_ylabel("loss")
left.set_title("Binary cross-entropy while training")
grid = np.linspace(-4, 4, 200)
gx, gy = np.meshgrid(grid, grid)
p = forward(w, b, np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
right.contourf(gx, gy, p, levels=20, cmap="RdBu_r", alpha=0.6)
right.contour(gx, gy, p, levels=[0.5], colors="k")
right.scatter(*x[y == 0].T, s=8)
right.scatter(*x[y == 1].T, s=8)
right.set_aspect("equal")
right.set_title("P(class 1) and the boundary a = 0.5")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The same neuron in the engine
#
# In `digitnet.nn` this neuron is a `Linear(2, 1)` layer followed by the binary
# cross-entropy loss on its logit $z$ (the loss applies the sigmoid itself, written so that
# it never takes the log of 0). `Linear.backward` computes exactly the formulas above:
# `dW = x.T @ g`, `db = sum of g`, `dx = g @ W.T`, with `g = (a - y) / n` from the loss.
# `check_model_gradients` runs the finite-difference check on every parameter and on the
# input, the way the test suite checks every layer and loss.

# %%
neuron = Sequential([Linear(2, 1, weight_init={"name": "normal", "std": 0.1}, rng=np.random.default_rng(1),
                            dtype=np.float64)])
errors = check_model_gradients(neuron, BinaryCrossEntropy(), x[:20], y[:20])
print({name: f"{err:.1e}" for name, err in errors.items()})
assert max(errors.values()) < 1e-6

# %% [markdown]
# Every relative error is tiny, for the weights, the bias and the input. The next tutorial
# stacks such layers into a network and trains it on MNIST with the engine's training loop.
