"""Pure forward/backward kernels, one file per op family, chosen through the registry.

Importing this package registers every built-in implementation.
"""

from . import activation, adaptive_pool, conv, dropout, linear, loss, normalization, pointwise_loss, pool, shape  # noqa: F401  (registers the kernels)
from .registry import Kernel, available, get, ops, register, set_default, unregister, use

__all__ = ["Kernel", "available", "get", "ops", "register", "set_default", "unregister", "use"]
