"""The from-scratch engine: layers (dense, convolutional, batch norm), losses, initialisers,
optimisers, ``Sequential``.

Pure array code on NumPy. It knows nothing of MNIST, files, plots or the command line, and
imports no other part of digitnet. Each kind of component lives in one registry
(:data:`LAYERS`, :data:`LOSSES`, :data:`OPTIMIZERS`, :data:`SCHEDULES`,
:data:`INITIALIZERS`), where anything built elsewhere registers the same way.
"""

from . import init, losses, optim
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, MaxPool2D, Unflatten
from .gradcheck import check_model_gradients, numerical_gradient, relative_error
from .init import INITIALIZERS
from .layers import (
    LAYERS,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    ScaledTanh,
    Sigmoid,
    Softmax,
    Tanh,
    activation_names,
)
from .losses import LOSSES, BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy, one_hot
from .model import Sequential, mlp, mlp_layers
from .norm import BatchNorm
from .optim import (
    OPTIMIZERS,
    SCHEDULES,
    SGD,
    Adam,
    AdamW,
    CosineDecay,
    ExponentialDecay,
    Momentum,
    Nesterov,
    Optimizer,
    Schedule,
    StepDecay,
)
from .registry import Registry, UnknownComponentError

__all__ = [
    "INITIALIZERS", "LAYERS", "LOSSES", "OPTIMIZERS", "SCHEDULES", "Adam", "AdamW", "AvgPool2D", "BatchNorm",
    "BinaryCrossEntropy", "Conv2D", "CosineDecay", "Dropout", "Flatten", "GlobalAvgPool2D", "MaxPool2D",
    "Unflatten", "ExponentialDecay", "Layer", "LeakyReLU", "Linear", "Loss", "MeanSquaredError",
    "Momentum", "Nesterov", "Optimizer", "ReLU", "Registry", "SGD", "ScaledTanh", "Schedule", "Sequential",
    "Sigmoid",
    "Softmax", "SoftmaxCrossEntropy", "StepDecay", "Tanh", "UnknownComponentError", "activation_names",
    "check_model_gradients", "init", "losses", "mlp", "mlp_layers", "numerical_gradient", "one_hot", "optim",
    "relative_error",
]
