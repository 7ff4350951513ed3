"""The conformance suite: refcnn's kernels, and yours, checked against PyTorch.

Installed with refcnn as ``refcnn.conformance`` (``pip install 'refcnn[conformance]'``); in a
clone of the repository it lives in the top-level ``conformance/`` folder. Run it with
``python -m refcnn conformance --plugin FILE --impl NAME`` or as pytest items with
``python -m pytest --pyargs refcnn.conformance --refcnn-plugin FILE --refcnn-impl NAME``;
see its README.md. Importing this package is cheap: torch is imported only when checks run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LayerProtocolError", "load_plugin", "main", "register_layer", "repro"]


def __getattr__(name: str) -> Any:
    # lazy, so that `import refcnn.conformance` needs neither torch nor hypothesis
    if name in ("register_layer", "LayerProtocolError"):
        from . import layers

        return getattr(layers, name)
    if name == "load_plugin":
        from .engine import load_plugin

        return load_plugin
    if name in ("main", "repro"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
