"""Looking into models: the profiler (`profiler`: parameters and MACs per layer and stage), the lesion study
(`lesion`, Veit et al. 2016) and the README's model table (`model_table`). The public names are re-exported by
`keras_convnets`; the submodules keep their names here (`keras_convnets.analysis.lesion` is the module)."""

__all__: list[str] = []
