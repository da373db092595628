"""NV12 (Y'CbCr 4:2:0) to RGB with torch ops, on whichever device the planes live.

One conversion, shared by the NVDEC source (``sources/nvdec.py``) and the CUDA preprocessor
(``preprocess/cuda.py``), so GPU-decoded frames and uploaded NV12 frames become the same pixels.
"""

from __future__ import annotations

# Y'CbCr -> R'G'B' for limited-range video: (Kr, Kb) per standard
LUMA = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def rgb_from_nv12(y, uv, *, matrix: str = "bt601", full_range: bool = False):
    """(3, H, W) float RGB in 0..255 from NV12 planes: Y (H, W) and interleaved UV (H/2, W/2, 2), uint8.

    Chroma is repeated over each 2x2 block, as FFmpeg's swscale does for
    same-size YUV 4:2:0 -> RGB.
    """
    import torch

    kr, kb = LUMA[matrix]
    kg = 1.0 - kr - kb
    h, w = y.shape
    yf = y.float()
    cb = uv[..., 0].float().repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w] - 128.0
    cr = uv[..., 1].float().repeat_interleave(2, 0).repeat_interleave(2, 1)[:h, :w] - 128.0
    if not full_range:
        yf = (yf - 16.0) * (255.0 / 219.0)
        cb, cr = cb * (255.0 / 224.0), cr * (255.0 / 224.0)
    r = yf + 2.0 * (1.0 - kr) * cr
    b = yf + 2.0 * (1.0 - kb) * cb
    g = yf - (2.0 * kb * (1.0 - kb) / kg) * cb - (2.0 * kr * (1.0 - kr) / kg) * cr
    return torch.stack([r, g, b]).round_().clamp_(0.0, 255.0)
