"""img2img: image-to-image translation (pix2pix, CycleGAN, CUT, colourisation) on PyTorch.

Importing the package loads nothing: each room is imported where it is used (the methods by
name from `img2img.methods.METHODS`)."""
