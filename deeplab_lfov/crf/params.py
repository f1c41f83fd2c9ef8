"""DeepLab's CRF parameters: one small value type shared by both CRF backends, the settings and exports."""

from __future__ import annotations

import dataclasses

__all__ = ["CRFParams"]


@dataclasses.dataclass(frozen=True)
class CRFParams:
    """DeepLab's CRF settings (the LargeFOV values from the paper by default)."""

    bi_w: float = 4.0
    bi_xy_std: float = 121.0
    bi_rgb_std: float = 5.0
    pos_w: float = 3.0
    pos_xy_std: float = 3.0
    iterations: int = 10
