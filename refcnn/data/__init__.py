"""Data (being written)."""
