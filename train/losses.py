"""Losses of the paper (II-B): LSGAN with an image pool, cycle and identity L1, L_mix, feature GAN."""
from __future__ import annotations


import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017), as in CycleGAN: (D(x) - target)^2."""
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_components(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    c1, c2 = 0.01**2, 0.03**2
    mu_x = F.conv2d(x, window, groups=c)
    mu_y = F.conv2d(y, window, groups=c)
    sxx = F.conv2d(x * x, window, groups=c) - mu_x**2
    syy = F.conv2d(y * y, window, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, window, groups=c) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """MS-SSIM (Wang et al. 2003) of images in [0, 1], per sample.

    Five levels need a side of at least (window - 1) * 2**4 + 1 = 161 pixels. Smaller
    images (the 1/4 and 1/2 predictions of a 256 crop) use as many levels as fit, with the
    standard weights of those levels renormalised; below one window it falls back to
    single-scale SSIM with a window as large as the image allows.
    """
    side = min(x.shape[-2:])
    win = min(window_size, side if side % 2 == 1 else side - 1)
    levels = 1
    while levels < 5 and (win - 1) * 2**levels + 1 <= side:
        levels += 1
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], device=x.device, dtype=x.dtype)
    weights = weights / weights.sum()
    window = _gaussian_window(win, sigma, x.shape[1], x.device, x.dtype)
    values = []
    for level in range(levels):
        ssim_v, cs_v = _ssim_components(x, y, window)
        # relu keeps fractional powers defined when a component turns negative early in training
        values.append(torch.relu(ssim_v if level == levels - 1 else cs_v))
        if level < levels - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=0)  # levels, N
    return torch.prod(stacked ** weights.view(-1, 1), dim=0)


def l_mix(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.84, pixel: str = "l1") -> torch.Tensor:
    """Zhao et al. 2017: alpha (1 - MS-SSIM) + (1 - alpha) L1, images in [-1, 1] mapped to [0, 1].

    Zhao et al. weight the L1 term with the last level's Gaussian; we use the plain L1.
    ``pixel="l2"`` puts the mean squared error in place of L1 (and skips MS-SSIM when alpha is 0).
    """
    p, t = (pred + 1) / 2, (target + 1) / 2
    pixel_term = F.l1_loss(p, t) if pixel == "l1" else F.mse_loss(p, t)
    if alpha == 0:
        return pixel_term
    return alpha * (1 - ms_ssim(p, t)).mean() + (1 - alpha) * pixel_term


def multiscale_mix(predictions: list[torch.Tensor], target: torch.Tensor, alpha: float = 0.84, pixel: str = "l1") -> torch.Tensor:
    """Sum over the S predictions (coarse to fine) of L_mix against the target pooled to each scale."""
    total = 0.0
    for pred in predictions:
        factor = target.shape[-1] // pred.shape[-1]
        t = F.avg_pool2d(target, factor) if factor > 1 else target
        total = total + l_mix(pred, t, alpha, pixel)
    return total


class ImagePool:
    """CycleGAN's history of generated images: with p = 0.5 the discriminator sees an older
    fake instead of the new one. Randomness comes from a generator so runs reproduce."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand(1, generator=gen)) < 0.5:
                i = int(torch.randint(len(self.images), (1,), generator=gen))
                old = self.images[i].clone()
                self.images[i] = img.clone()
                out.append(old)
            else:
                out.append(img)
        return torch.cat(out, dim=0)

    def state(self) -> torch.Tensor | None:
        return torch.cat(self.images) if self.images else None

    def load(self, stacked: torch.Tensor | None) -> None:
        self.images = [] if stacked is None else [t.unsqueeze(0).clone() for t in stacked]


