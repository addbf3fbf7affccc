"""Translation with a trained model: the Translator (`translator`), folders and batches
(`batch`), blended tiles (`tiling`), videos (`video`), ONNX graphs (`onnx_graph`), the models an
app offers (`catalog`) and the canonical code's published generators (`pretrained`). Nothing here
imports training."""
from .translator import Translator

__all__ = ["Translator"]
