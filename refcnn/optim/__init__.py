"""Optimizers and learning-rate schedulers with torch.optim's names, arguments, defaults and
update formulas (PyTorch's single-tensor algorithms, in its order of operations)."""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
