"""PyTorch views of a ground-truth data set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:  # annotations only: GroundTruthData.torch_dataset imports this module
    from dislab.data.base import GroundTruthData


class GridDataset(Dataset):
    """Map-style dataset over the full grid: item ``i`` -> ``(image float32, factors int64)``.

    ``image`` has shape ``observation_shape`` (channels first) with values in [0, 1].
    For training, :meth:`GroundTruthData.batches` is faster (one vectorised gather per batch).
    """

    def __init__(self, data: GroundTruthData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray([i], dtype=np.int64)
        x = self.data.images_from_index(idx)[0]
        return torch.from_numpy(x), torch.from_numpy(self.data.factors(idx)[0])

    def __getitems__(self, indices: list[int]) -> Any:
        idx = np.asarray(indices, dtype=np.int64)
        x = torch.from_numpy(self.data.images_from_index(idx))
        f = torch.from_numpy(self.data.factors(idx))
        return list(zip(x, f))
