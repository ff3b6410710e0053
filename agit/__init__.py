"""agit: Unsupervised Attention-guided Image-to-Image Translation (Mejjati et al., NeurIPS 2018) in PyTorch."""

from .config import VARIANTS, Config, preset
from .model import AGGAN, Translation

__all__ = ["AGGAN", "Config", "Translation", "VARIANTS", "preset"]
__version__ = "0.1.0"
