"""Explanations of a classifier's predictions: Grad-CAM heat maps (`grad_cam`, Selvaraju et al. 2017) for every
family, the layer they are taken from (`default_layer`), their overlay on the image as PNG (`overlay`), and the
overlays of image files from an export, which `convnets predict --cam` writes (`write_cams`, named by `cam_paths`).

Modules: `maps` (the maps and the overlay) and `cam_files` (image files and export directories).
"""

from keras_convnets.explain.cam_files import cam_paths, export_keras_model, write_cams
from keras_convnets.explain.maps import default_layer, grad_cam, overlay

__all__ = ["cam_paths", "default_layer", "export_keras_model", "grad_cam", "overlay", "write_cams"]
