"""The job's configuration, the lowest layer above the error classes: what a job is (the schema),
how its files are read (YAML, ``--set``, typed conversion), which values are impossible, and where
a job named by a user is found (the shipped job files).

Building a job from mappings needs the method's options class, found through the strategy
registry, so it sits above the strategies: hpcfed.assembly.job.
"""
from hpcfed.config.schema import (
    DEFAULT_METHOD,
    CheckpointConfig,
    ClientsConfig,
    DataConfig,
    DevicesConfig,
    EvalConfig,
    FaultsConfig,
    JobConfig,
    ModelConfig,
    OutputConfig,
    StrategyConfig,
    StrategyOptions,
    TrainConfig,
)

__all__ = ["DEFAULT_METHOD", "CheckpointConfig", "ClientsConfig", "DataConfig", "DevicesConfig", "EvalConfig",
           "FaultsConfig", "JobConfig", "ModelConfig", "OutputConfig", "StrategyConfig", "StrategyOptions",
           "TrainConfig"]
