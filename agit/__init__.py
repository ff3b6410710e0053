"""agit: Unsupervised Attention-guided Image-to-Image Translation (Mejjati et al., NeurIPS 2018) in PyTorch."""

from .config import METHODS, VARIANTS, Config, preset

__all__ = ["AGGAN", "Config", "METHODS", "Translation", "Translator", "VARIANTS", "build_model", "load", "preset"]
__version__ = "0.1.0"


_LAZY = {"load": "api", "Translator": "api", "build_model": "baselines", "AGGAN": "model", "Translation": "model"}


def __getattr__(name):
    """The names that need torch, imported on first use. `agit.load` and `agit.Translator`
    (agit/api.py): their image I/O adds about 170 MB and 1–2 s (measured here) to `import agit`,
    which every CLI command pays. The networks: torch takes seconds to import, and the CLI must
    first install its stop-signal handlers (agit/signals.py), so that a Ctrl-C or SIGTERM at
    start-up gives exit status 75 and one line."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'agit' has no attribute {name!r}")
