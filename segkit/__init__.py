"""segkit: semantic segmentation of urban scenes (Cityscapes), notebook-first."""

__version__ = "0.1.0"
