"""Optional packages: is one installed, and a clear error when one a step needs is not.

A host may carry only part of the stack (a GPU image with PyTorch and no TensorFlow).
The workbench checks for a package without importing it (importing TensorFlow or
torch costs seconds), so missing frameworks turn into `unavailable` rows and
failed manifests that name the package, never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
import sys


def installed(module: str) -> bool:
    """Whether the top-level `module` can be imported here, found without importing it (a
    package whose finder raises, e.g. a broken or blocked install, counts as missing)."""
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, message: str) -> None:
    """Raise ModuleNotFoundError(`message`) when the top-level `module` is not installed
    (for passes and builders, so a failed manifest says what is missing)."""
    if not installed(module):
        raise ModuleNotFoundError(message, name=module)
