"""Sandbox Farm: benchmark AI code-execution sandbox providers at scale, honestly."""

__version__ = "0.1.0"
