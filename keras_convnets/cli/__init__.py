"""The `convnets` command: `main` dispatches to one module per sub-command (train, tune, export, predict,
profile, models, experiment)."""

__all__: list[str] = []
