"""How far data.decode: gpu's RGB may be from data.decode: cpu's, in 0..255 levels of the decoded
RGB: at most RGB_MAX_DIFF per pixel and RGB_MEAN_DIFF on average.

Both paths decode with libjpeg-turbo here and resample with the same filter, one axis at a time;
they differ by a level where rounding differs (PIL works in fixed point) and by a few levels on the
few crops where Pillow takes the other axis first. (nvjpeg on a GPU may differ a little more in the
IDCT and chroma upsampling; not tested here.)
"""

import torch

RGB_MAX_DIFF = 3 + 1e-3  # levels, with slack for the float normalisation
RGB_MEAN_DIFF = 0.1


def level_diff(a: torch.Tensor, b: torch.Tensor, std) -> torch.Tensor:
    """|a - b| of normalised images [..., 3, s, s] back in 0..255 levels."""
    return (a - b).abs() * torch.tensor(std).view(3, 1, 1) * 255
