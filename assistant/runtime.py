"""Deprecated module name: the composition root is :mod:`assistant.services`."""
from assistant.services import BUNDLED_LOAD_KEY, Services, bundled_paths

Runtime = Services  # the name used before the composition root had its own module

__all__ = ["BUNDLED_LOAD_KEY", "Runtime", "Services", "bundled_paths"]
