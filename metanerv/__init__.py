"""NeRV models and the meta-learner that produces their shared initialization."""
from metanerv.model import NeRV, NeRVConfig, grid_size_for, pad_to_stride

__all__ = ["NeRV", "NeRVConfig", "grid_size_for", "pad_to_stride"]
