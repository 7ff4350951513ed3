"""Modules with PyTorch's names, arguments and defaults, and hand-derived backward."""

from . import activation, conv, dropout, flatten, init, linear, loss, normalization, pooling
from . import functional as functional
from .activation import *
from .container import ModuleDict, ModuleList, Sequential
from .conv import *
from .dropout import *
from .flatten import *
from .linear import *
from .loss import *
from .module import Module
from .normalization import *
from .parameter import Parameter
from .pooling import *

__all__ = ["init", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
for _family in (activation, conv, dropout, flatten, linear, loss, normalization, pooling):
    __all__ += _family.__all__
