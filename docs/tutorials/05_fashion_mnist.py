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
# # 5. Fashion-MNIST: where the MLP stops being enough
#
# Fashion-MNIST (Zalando Research, 2017) has MNIST's shape exactly: 60,000 training and
# 10,000 test images, 28x28 grayscale, ten classes, the same IDX files. The classes are
# clothes, shoes and bags instead of digits, and that is enough to make it much harder.
# This tutorial trains the same network on both with the same budget, and looks at where
# the Fashion-MNIST model fails. It is meant as an exercise: the last cell lists things to
# try.
#
# `load_dataset("fashion-mnist")` reads `$DIGITNET_DATA/fashion-mnist` if it exists, else the
# cache, else downloads the files and verifies them (see the README's datasets section).
# On the command line: `digitnet train --dataset fashion-mnist`.

# %%
import os

import numpy as np
from IPython.display import Image, display

from digitnet import plots
from digitnet.data import dataset_info, load_dataset
from digitnet.estimator import MLPClassifier
from digitnet.metrics import confusion_matrix

SMALL = os.environ.get("DIGITNET_TUTORIAL_SMALL") == "1"
n, epochs = (6_000, 3) if SMALL else (60_000, 10)
fashion = load_dataset("fashion-mnist", progress=False)
info = dataset_info("fashion-mnist")
print(fashion.source)
print(f"{info.title}: {info.description}; checksums: {info.checksum_source.split('.')[0]}")
print(dict(enumerate(fashion.class_names)))

# %%
names = dict(enumerate(fashion.class_names))
display(Image(plots.plot_class_samples(fashion.x_test, fashion.y_test, list(range(10)), per_class=8,
                                       names=names, title="Fashion-MNIST test images per class")))

# %% [markdown]
# ## The same network, the same budget
#
# The default recipe's network, 784-256-10 with ReLU and Adam, trained on the first `n`
# training images of each dataset for the same number of epochs, with 10% held out to
# validate on.

# %%
mnist = load_dataset("mnist", progress=False)
scores, models = {}, {}
for ds in (mnist, fashion):
    clf = MLPClassifier(hidden=(256,), epochs=epochs, valid_size=0.1, seed=0)
    clf.fit(ds.x_train[:n], ds.y_train[:n])
    scores[ds.name], models[ds.name] = clf.score(ds.x_test, ds.y_test), clf
    h = clf.history_
    print(f"{ds.name:<14} test accuracy {scores[ds.name]:.4f}; last epoch: training accuracy "
          f"{h.train_accuracy[-1]:.4f}, validation {h.val_accuracy[-1]:.4f} "
          f"(gap {h.train_accuracy[-1] - h.val_accuracy[-1]:+.4f})")
ratio = (1 - scores["fashion-mnist"]) / (1 - scores["mnist"])
print(f"Fashion-MNIST test errors: {ratio:.1f} times as many as MNIST's")

# %% [markdown]
# The same network gets far more test images wrong on Fashion-MNIST, and the gap between its
# training and validation accuracy is wider: more epochs of the same network buy less. Its
# training curves:

# %%
display(Image(plots.plot_history(models["fashion-mnist"].history_.to_dict(),
                                 title="Fashion-MNIST, 784-256-10")))

# %% [markdown]
# ## Where it fails
#
# The confusion matrix, with the class names: the errors are not spread evenly. Shirts are
# taken for T-shirts, pullovers and coats, and those for each other: garments of the same
# outline, told apart by texture and detail that a layer of pixel-wise weights sees poorly.

# %%
clf = models["fashion-mnist"]
predicted = clf.predict(fashion.x_test)
cm = confusion_matrix(fashion.y_test, predicted, 10)
display(Image(plots.plot_confusion_matrix(cm, fashion.class_names, kind="fashion item")))
off = cm - np.diag(np.diag(cm))
for flat in np.argsort(off, axis=None)[::-1][:5]:
    true, guess = np.unravel_index(flat, off.shape)
    print(f"{off[true, guess]:>4} {names[true]} taken for {names[guess]}")

# %% [markdown]
# The most confident mistakes, and what the first layer learned: each hidden unit's 784
# weights drawn as the 28x28 image they look at. Many are outlines of whole garments, a
# template per silhouette, which is why shapes that share a silhouette get confused.

# %%
proba = clf.predict_proba(fashion.x_test)
confidence = proba[np.arange(len(predicted)), predicted]
wrong = np.flatnonzero(predicted != fashion.y_test)
worst = wrong[np.argsort(-confidence[wrong])[:10]]
display(Image(plots.plot_confident_mistakes(fashion.x_test[worst], fashion.y_test[worst], predicted[worst],
                                            confidence[worst], names=names,
                                            title="Most confidently wrong Fashion-MNIST test images")))
weights = clf.classifier_.model.layers[0].params["weight"]
display(Image(plots.plot_first_layer_weights(weights, n_units=32)))

# %% [markdown]
# ## Exercises
#
# * Train longer and wider (`hidden=(512, 256)`, 30 epochs): how much does test accuracy
#   move, and what happens to the gap between training and validation accuracy?
# * Add dropout (`dropout=0.2`), or early stopping (`early_stopping=3`): which one helps more?
# * Normalise differently (`normalization="zscore"`): does it matter here as it did for seed
#   003?
# * From the command line: `digitnet train --dataset fashion-mnist --report` writes the
#   figures above for a full run, with the class names, and `digitnet serve` then shows a
#   page headed "Draw a fashion item".
#
# A fully connected network has to learn every position of every feature separately. A
# convolutional network shares its weights across positions: the next tutorial builds one
# by hand, and ends by suggesting it be trained on Fashion-MNIST.
