"""sirestore: fast, light image restoration with stochastic interpolants (flow matching).

from sirestore import Restorer
restored = Restorer()(image)  # numpy, PIL or torch in, the same type out

The heavy modules (torch) load on first use, so the command line starts (and handles Ctrl-C) at once.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Restorer": "sirestore.restore",
    "default_weights": "sirestore.restore",
    "load_weights": "sirestore.checkpoint",
    "OrtRestorer": "sirestore.ort",  # needs the onnx extra to run
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sirestore' has no attribute {name!r}")


def load_model(weights=None):
    """The shipped model (or the one in `weights`), in eval mode."""
    from sirestore.checkpoint import load_weights
    from sirestore.restore import default_weights

    return load_weights(weights or default_weights())


def restore(image, **kwargs):
    """Restore one image (numpy, PIL or torch) with a Restorer built from kwargs."""
    from sirestore.restore import Restorer

    return Restorer(**kwargs)(image)


__all__ = ["OrtRestorer", "Restorer", "default_weights", "load_model", "load_weights", "restore", "__version__"]
