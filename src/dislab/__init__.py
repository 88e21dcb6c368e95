"""dislab: learning and evaluating disentangled representations in PyTorch."""

__version__ = "0.1.0"
