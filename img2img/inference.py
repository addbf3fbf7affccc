"""The Translator's former home, kept so that `from img2img.inference import Translator` works."""
from .translate.translator import BATCH_NORM_MODES, ENGINES, Translator, to_pil

__all__ = ["BATCH_NORM_MODES", "ENGINES", "Translator", "to_pil"]
