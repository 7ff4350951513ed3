"""The conformance suite: refcnn checked against PyTorch (see conformance/README.md)."""

from .layers import LayerProtocolError, register_layer

__all__ = ["LayerProtocolError", "register_layer"]
