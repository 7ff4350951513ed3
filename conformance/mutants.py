"""Deliberately broken kernels (placeholder)."""

from typing import Any


def run_all(profile: str, jobs: int) -> list[dict[str, Any]]:
    return []
