"""Modules with PyTorch's names, arguments and defaults, and hand-derived backward."""

from . import activation, conv, dropout, flatten, init, linear, loss, normalization, pooling
from .activation import *  # noqa: F403
from .conv import *  # noqa: F403
from .dropout import *  # noqa: F403
from .flatten import *  # noqa: F403
from .linear import *  # noqa: F403
from .loss import *  # noqa: F403
from .module import Module, Parameter, Sequential
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403

__all__ = ["init", "Module", "Parameter", "Sequential"]
for _family in (activation, conv, dropout, flatten, linear, loss, normalization, pooling):
    __all__ += _family.__all__
