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
# # 2. A multilayer perceptron on MNIST: the four-line loop, then `fit`
#
# The neuron of the first tutorial, many times over: 784 pixels in, a hidden layer of 128
# ReLU units, 10 outputs (one logit per digit), trained with softmax cross-entropy. First
# with the engine's own training loop, which is four lines, then with `digitnet.train.fit`,
# which adds what a real run needs: shuffling, validation, a history, checkpoints.
#
# The data come from `load_mnist()`: `$DIGITNET_DATA` if it names a directory with MNIST,
# else the cache, else they are downloaded and verified. With `DIGITNET_TUTORIAL_SMALL=1` (as
# in CI) the tutorial trains on a subset so that it runs in seconds.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from digitnet import plots
from digitnet.data import Normalizer, load_mnist, train_valid_split
from digitnet.metrics import confusion_matrix
from digitnet.nn import SoftmaxCrossEntropy, mlp, optim
from digitnet.train import fit

SMALL = os.environ.get("DIGITNET_TUTORIAL_SMALL") == "1"
data = load_mnist(progress=False)
n = 6_000 if SMALL else len(data.x_train)
x_train, y_train = data.x_train[:n], data.y_train[:n]
print(data.source)
print("training images", x_train.shape, x_train.dtype, "labels", y_train.shape, y_train.dtype)

# %% [markdown]
# Images stay `uint8` (0-255), 784 values per row. A `Normalizer` scales a batch to floats
# when it is needed ("unit": $x / 255$), so the whole training set never exists in float32.

# %%
fig, axes = plt.subplots(1, 8, figsize=(9, 1.5))
for ax, image, label in zip(axes, x_train[:8], y_train[:8], strict=True):
    ax.imshow(image.reshape(28, 28), cmap="gray_r")
    ax.set_title(str(label))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## The engine's training loop
#
# `mlp` builds a `Sequential`: Linear(784, 128), ReLU, Linear(128, 10). One step of
# training is four lines: the forward pass through the network and the loss, the backward
# pass from the loss to every parameter's gradient, and the optimiser's update.

# %%
model = mlp([784, 128, 10], activation="relu", rng=0)
loss = SoftmaxCrossEntropy()
optimizer = optim.SGD(0.1, momentum=0.9)
scale = Normalizer("unit").fit(x_train)
print(model)

batch, rng, started = 64, np.random.default_rng(0), time.perf_counter()
for _epoch in range(2):
    order = rng.permutation(n)
    for i in range(0, n, batch):
        xb, yb = scale.transform(x_train[order[i:i + batch]]), y_train[order[i:i + batch]]
        outputs = model.forward(xb)                    # 1. forward: logits (batch, 10)
        loss.forward(outputs, yb)                      # 2. the loss, remembering what backward needs
        model.backward(loss.backward())                # 3. backward: dL/dW for every layer
        optimizer.step(model.parameters())             # 4. update: W -= lr * (momentum) gradient

predicted = model.predict(scale.transform(data.x_test)).argmax(axis=1)
print(f"2 epochs on {n:,} images in {time.perf_counter() - started:.1f} s: "
      f"test accuracy {np.mean(predicted == data.y_test):.4f}")

# %% [markdown]
# That is all training is. `loss.backward()` returns $(p - y)/n$, the softmax's gradient
# fused with the cross-entropy's; each layer's `backward` turns the gradient of its output
# into the gradients of its parameters and of its input, and passes the latter down.
#
# ## The same, with `fit`
#
# `fit` runs the same steps and adds a validation split, shuffling with a seed (same seed,
# same weights, bit for bit), a learning-rate schedule, a progress line per epoch and a
# `History`. Here: the default recipe's network and optimiser (784-256-10, Adam with a cosine
# schedule), with 10% of the training images held out for validation.

# %%
x_tr, y_tr, x_val, y_val = train_valid_split(x_train, y_train, 0.1, stratify=True, seed=0)
model = mlp([784, 256, 10], activation="relu", rng=0)
scale = Normalizer("unit").fit(x_tr)
history = fit(model, SoftmaxCrossEntropy(), optim.Adam(2e-3, schedule="cosine"), x_tr, y_tr,
              epochs=3 if SMALL else 10, batch_size=128, preprocess=scale, validation_data=(x_val, y_val),
              progress=False, log=print)
outputs = model.predict(scale.transform(data.x_test))
predicted = outputs.argmax(axis=1)
print(f"test accuracy {np.mean(predicted == data.y_test):.4f} (best epoch {history.best_epoch})")

# %%
display(Image(plots.plot_history(history.to_dict())))

# %% [markdown]
# The confusion matrix shows which digits the network takes for which: the largest
# off-diagonal counts are the familiar pairs (4 and 9, 3 and 5, 7 and 2).

# %%
cm = confusion_matrix(data.y_test, predicted, 10)
display(Image(plots.plot_confusion_matrix(cm, [str(d) for d in range(10)])))

# %% [markdown]
# `MLPClassifier` wraps all of this behind `fit`/`predict`, with the run spec's settings as
# parameters, and `digitnet train` does the same from the command line, writing a run
# directory. Tutorial 3 looks at what goes wrong when one of these pieces is done badly.
