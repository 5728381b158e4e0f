"""The from-scratch engine: layers, losses, initialisers, optimisers, ``Sequential``.

Pure array code on NumPy. It knows nothing of MNIST, files, plots or the command line.
"""

from . import init, losses, optim
from .gradcheck import check_model_gradients, numerical_gradient, relative_error
from .layers import (
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    layer_from_config,
    register_layer,
)
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy, one_hot
from .model import ACTIVATIONS, Sequential, mlp
from .optim import SGD, Adam, AdamW, CosineDecay, ExponentialDecay, Optimizer, Schedule, StepDecay

__all__ = [
    "ACTIVATIONS", "Adam", "AdamW", "BinaryCrossEntropy", "CosineDecay", "Dropout",
    "ExponentialDecay", "Layer", "LeakyReLU", "Linear", "Loss", "MeanSquaredError", "Optimizer",
    "ReLU", "SGD", "Schedule", "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy",
    "StepDecay", "Tanh", "check_model_gradients", "init", "layer_from_config", "losses", "mlp",
    "numerical_gradient", "one_hot", "optim", "register_layer", "relative_error",
]
