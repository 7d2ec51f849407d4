"""The builders: the four families (`resnet` with `resnet_specs` and `resnet_builder`, `vgg`, `googlenet`,
`inception_v3`), their layers (`layers`), auxiliary-classifier training (`aux`), the registry (`registry`), the
pieces every builder shares (`common`) and ImageNet preprocessing and class names (`imagenet`).

The public names are re-exported by `keras_convnets` itself; this package imports none of its modules, so that
`keras_convnets.weights` can import the registry and the ResNet spec tables without importing the builders.
"""

__all__: list[str] = []
