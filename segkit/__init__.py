"""segkit: semantic segmentation of urban scenes (Cityscapes), notebook-first."""

import warnings

__version__ = "0.1.0"

# huggingface_hub imports tqdm.auto, which warns in every notebook without ipywidgets. segkit
# draws its own notebook bars without widgets (segkit.progress), so the warning asks for nothing.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
