"""Type stubs of the CUDA build of the native module: the same functions as `_native`."""

from ._native import *  # noqa: F401,F403
