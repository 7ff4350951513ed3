"""The conformance suite: refcnn checked against PyTorch (see conformance/README.md)."""
