"""Training data: image reading (`images`), paired and unpaired datasets, albumentations
transforms, and dataset preparation (`prepare`). Import the submodules: this package imports
nothing itself, so reading an image does not load the training pipeline."""
