"""agit: Unsupervised Attention-guided Image-to-Image Translation (Mejjati et al., NeurIPS 2018) in PyTorch."""

from .baselines import build_model
from .config import METHODS, VARIANTS, Config, preset
from .model import AGGAN, Translation

__all__ = ["AGGAN", "Config", "METHODS", "Translation", "Translator", "VARIANTS", "build_model", "load", "preset"]
__version__ = "0.1.0"


def __getattr__(name):
    """`agit.load` and `agit.Translator` (agit/api.py), imported on first use: their image I/O
    adds about 170 MB and 1–2 s (measured here) to `import agit`, which every CLI command pays."""
    if name in ("load", "Translator"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'agit' has no attribute {name!r}")
