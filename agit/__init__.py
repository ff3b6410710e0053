"""agit: Unsupervised Attention-guided Image-to-Image Translation (Mejjati et al., NeurIPS 2018) in PyTorch."""

from .baselines import build_model
from .config import METHODS, VARIANTS, Config, preset
from .model import AGGAN, Translation

__all__ = ["AGGAN", "Config", "METHODS", "Translation", "VARIANTS", "build_model", "preset"]
__version__ = "0.1.0"
