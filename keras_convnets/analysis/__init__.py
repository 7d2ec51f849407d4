"""Looking into models: the profiler (`profiler`: parameters and MACs per layer and stage), the lesion study
(`lesion`, Veit et al. 2016) and the README's model table (`model_table`).

The package re-exports the public functions, so the attribute `keras_convnets.analysis.lesion` is the function
`lesion` (as `keras_convnets.lesion` is); the module stays `sys.modules["keras_convnets.analysis.lesion"]`, which
`from keras_convnets.analysis.lesion import list_blocks` and `importlib.import_module` reach. (`import
keras_convnets.analysis.lesion as m` binds the attribute, i.e. the function, as Python's `import a.b as m` does.)
"""

from keras_convnets.analysis.lesion import lesion, list_blocks
from keras_convnets.analysis.profiler import ModelProfile, bottleneck_cost, profile

__all__ = ["ModelProfile", "bottleneck_cost", "lesion", "list_blocks", "profile"]
