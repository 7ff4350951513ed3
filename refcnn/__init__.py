"""refcnn: a convolutional-network package in plain NumPy, every layer verified against PyTorch."""

import os as _os

from . import data, io, kernels, nn, optim
from ._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from ._random import default_generator, manual_seed

__version__ = "0.1.0"

# The conformance suite is installed as refcnn/conformance; a clone of the repository keeps it
# in its top-level conformance/ folder. Let `refcnn.conformance` find it there too.
_clone = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "conformance")) and _os.path.isfile(
    _os.path.join(_clone, "conformance", "__init__.py")
):
    __path__.append(_clone)

__all__ = [
    "data", "default_generator", "enable_grad", "io", "is_grad_enabled", "kernels", "manual_seed", "nn",
    "no_grad", "optim", "set_grad_enabled", "__version__",
]  # fmt: skip
