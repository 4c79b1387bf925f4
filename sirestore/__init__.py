"""sirestore: fast, light image restoration with stochastic interpolants (flow matching).

from sirestore import Restorer
restored = Restorer()(image)  # numpy, PIL or torch in, the same type out
"""

from sirestore.checkpoint import load_weights
from sirestore.restore import Restorer, default_weights

__version__ = "0.1.0"


def load_model(weights=None):
    """The shipped model (or the one in `weights`), in eval mode."""
    return load_weights(weights or default_weights())


def restore(image, **kwargs):
    """Restore one image (numpy, PIL or torch) with a Restorer built from kwargs."""
    return Restorer(**kwargs)(image)


__all__ = ["Restorer", "default_weights", "load_model", "load_weights", "restore", "__version__"]
