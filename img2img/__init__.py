"""img2img: image-to-image translation (pix2pix, CycleGAN, CUT, colourisation) on PyTorch.

Importing the package registers the training methods (`img2img.methods`), through which a
config (`img2img.config`) finds its method by name."""
from . import methods as _methods  # noqa: F401  (registration)
