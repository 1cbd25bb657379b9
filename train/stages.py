"""The three training stages of the paper (II-B, III-A), each one optimisation step at a time.

- translate: CycleGAN between NIR and gray (G_N2G, G_G2N, one PatchGAN per domain), Eq. 1.
- pretrain: the colorizer F_G on gray -> RGB with L_pp (Eq. 2).
- finetune: the whole chain on NIR with L_pf + lambda_tran L_tran + lambda_feat L_GAN^feat (Eq. 3-5).
  Eq. 4 is implemented in the LSGAN form used everywhere else: D_feat learns F_G(x_gray) -> 1 and
  F_G(G_N2G(x_nir)) -> 0; the generators are pushed to make D_feat(F_G(G_N2G(x_nir))) -> 1.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .config import StageConfig
from .data import Batch, to_gray
from .losses import ImagePool, lsgan, multiscale_mix

# Training-state networks: the model config's roles, with the image discriminator spec used
# twice (one per domain).
DISC_ROLES = {"disc_gray": "image_discriminator", "disc_nir": "image_discriminator", "disc_feat": "feature_discriminator"}


def adam(params, cfg: StageConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Stage:
    """One stage: its networks, optimizers and image pools, and ``step`` on a batch."""

    name = "stage"
    trains: tuple[str, ...] = ()
    averages: tuple[str, ...] = ()  # the generators whose weights `ema` averages: what the stage hands on

    def __init__(self, nets: dict[str, nn.Module], cfg: StageConfig, ctx):
        self.nets, self.cfg, self.ctx = nets, cfg, ctx
        self.pools: dict[str, ImagePool] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def _backward(self, loss: torch.Tensor, nets, opt_name: str) -> None:
        opt = self.optimizers[opt_name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.ctx.sync_grads(itertools.chain.from_iterable(n.parameters() for n in nets))
        opt.step()

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.ctx.bf16 and self.ctx.device.type == "cpu")

    # --- CycleGAN pieces shared by translate and finetune ---
    def _cycle_generator_loss(self, real_n: torch.Tensor, real_g: torch.Tensor, fake_g: torch.Tensor):
        g_n2g, g_g2n = self.nets["nir_to_gray"], self.nets["gray_to_nir"]
        d_g, d_n = self.nets["disc_gray"], self.nets["disc_nir"]
        fake_n = g_g2n(real_g)[-1]
        rec_n = g_g2n(fake_g)[-1]
        rec_g = g_n2g(fake_n)[-1]
        idt_g = g_n2g(real_g)[-1]
        idt_n = g_g2n(real_n)[-1]
        gan = lsgan(d_g(fake_g), True) + lsgan(d_n(fake_n), True)
        cyc = F.l1_loss(rec_n, real_n) + F.l1_loss(rec_g, real_g)
        idt = F.l1_loss(idt_g, real_g) + F.l1_loss(idt_n, real_n)
        loss = gan + self.cfg.lambda_cyc * cyc + self.cfg.lambda_idt * idt
        return loss, fake_n, {"gan_img": gan.item(), "cycle": cyc.item(), "identity": idt.item()}

    def _image_discriminator_step(self, real_n, real_g, fake_n, fake_g, gen) -> dict[str, float]:
        d_g, d_n = self.nets["disc_gray"], self.nets["disc_nir"]
        set_requires_grad([d_g, d_n], True)
        fg = self.pools["gray"].query(fake_g, gen)
        fn = self.pools["nir"].query(fake_n, gen)
        with self.autocast():
            loss_g = 0.5 * (lsgan(d_g(real_g), True) + lsgan(d_g(fg), False))
            loss_n = 0.5 * (lsgan(d_n(real_n), True) + lsgan(d_n(fn), False))
        self._backward(loss_g + loss_n, [d_g, d_n], "disc")
        return {"d_gray": loss_g.item(), "d_nir": loss_n.item()}


class TranslateStage(Stage):
    name = "translate"
    trains = ("nir_to_gray", "gray_to_nir", "disc_gray", "disc_nir")
    averages = ("nir_to_gray", "gray_to_nir")

    def __init__(self, nets, cfg, ctx, pool_size: int):
        super().__init__(nets, cfg, ctx)
        self.optimizers = {
            "gen": adam(itertools.chain(nets["nir_to_gray"].parameters(), nets["gray_to_nir"].parameters()), cfg),
            "disc": adam(itertools.chain(nets["disc_gray"].parameters(), nets["disc_nir"].parameters()), cfg),
        }
        self.pools = {"gray": ImagePool(pool_size), "nir": ImagePool(pool_size)}

    def step(self, batch: Batch, gen: torch.Generator) -> dict[str, float]:
        real_n, real_g = batch.nir, batch.gray_domain
        set_requires_grad([self.nets["disc_gray"], self.nets["disc_nir"]], False)
        with self.autocast():
            fake_g = self.nets["nir_to_gray"](real_n)[-1]
            loss, fake_n, parts = self._cycle_generator_loss(real_n, real_g, fake_g)
        self._backward(loss, [self.nets["nir_to_gray"], self.nets["gray_to_nir"]], "gen")
        parts.update(self._image_discriminator_step(real_n, real_g, fake_n.float(), fake_g.float(), gen))
        parts["loss"] = loss.item()
        return parts

    @torch.no_grad()
    def predict(self, nir: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input shown, prediction, truth) for validation, each (N, C, H, W) in [-1, 1]."""
        gray = self.nets["nir_to_gray"](nir)[-1]
        return nir, gray, to_gray(rgb)


class PretrainStage(Stage):
    name = "pretrain"
    trains = ("colorizer",)
    averages = ("colorizer",)

    def __init__(self, nets, cfg, ctx):
        super().__init__(nets, cfg, ctx)
        self.optimizers = {"gen": adam(nets["colorizer"].parameters(), cfg)}

    def step(self, batch: Batch, gen: torch.Generator) -> dict[str, float]:
        with self.autocast():
            preds = self.nets["colorizer"](batch.gray)
            loss = multiscale_mix([p.float() for p in preds], batch.rgb, self.cfg.mix_alpha, self.cfg.pixel_loss)
        self._backward(loss, [self.nets["colorizer"]], "gen")
        return {"loss": loss.item(), "l_pp": loss.item()}

    @torch.no_grad()
    def predict(self, nir, rgb):
        gray = to_gray(rgb)
        return gray, self.nets["colorizer"](gray)[-1], rgb


class FinetuneStage(Stage):
    name = "finetune"
    trains = ("nir_to_gray", "gray_to_nir", "colorizer", "disc_gray", "disc_nir", "disc_feat")
    averages = ("nir_to_gray", "gray_to_nir", "colorizer")

    def __init__(self, nets, cfg, ctx, pool_size: int):
        super().__init__(nets, cfg, ctx)
        gens = [nets["nir_to_gray"], nets["gray_to_nir"], nets["colorizer"]]
        self.optimizers = {
            "gen": adam(itertools.chain.from_iterable(n.parameters() for n in gens), cfg),
            "disc": adam(itertools.chain(nets["disc_gray"].parameters(), nets["disc_nir"].parameters()), cfg),
            "feat": adam(nets["disc_feat"].parameters(), cfg),
        }
        self.pools = {"gray": ImagePool(pool_size), "nir": ImagePool(pool_size), "feat": ImagePool(pool_size)}

    def step(self, batch: Batch, gen: torch.Generator) -> dict[str, float]:
        """One step of Eq. 5. A term whose weight is 0 is skipped entirely, its discriminator too."""
        n, cfg = self.nets, self.cfg
        discs = [n["disc_gray"], n["disc_nir"], n["disc_feat"]]
        set_requires_grad(discs, False)
        parts: dict[str, float] = {}
        with self.autocast():
            fake_g = n["nir_to_gray"](batch.nir)[-1]
            preds = n["colorizer"](fake_g)
            l_pf = multiscale_mix([p.float() for p in preds], batch.rgb, cfg.mix_alpha, cfg.pixel_loss)
            loss = l_pf
            if cfg.lambda_tran > 0:
                l_tran, fake_n, parts = self._cycle_generator_loss(batch.nir, batch.gray_domain, fake_g)
                loss = loss + cfg.lambda_tran * l_tran
                parts["l_tran"] = l_tran.item()
            if cfg.lambda_feat > 0:
                l_feat = lsgan(n["disc_feat"](preds[-1]), True)
                loss = loss + cfg.lambda_feat * l_feat
                parts["gan_feat"] = l_feat.item()
        self._backward(loss, [n["nir_to_gray"], n["gray_to_nir"], n["colorizer"]], "gen")
        if cfg.lambda_tran > 0:
            parts.update(self._image_discriminator_step(batch.nir, batch.gray_domain, fake_n.float(), fake_g.float().detach(), gen))
        if cfg.lambda_feat > 0:
            set_requires_grad([n["disc_feat"]], True)
            with torch.no_grad(), self.autocast():
                real_feat = n["colorizer"](batch.gray)[-1].float()
            fake_feat = self.pools["feat"].query(preds[-1].float(), gen)
            with self.autocast():
                d_feat = 0.5 * (lsgan(n["disc_feat"](real_feat), True) + lsgan(n["disc_feat"](fake_feat), False))
            self._backward(d_feat, [n["disc_feat"]], "feat")
            parts["d_feat"] = d_feat.item()
        parts.update({"loss": loss.item(), "l_pf": l_pf.item()})
        return parts

    @torch.no_grad()
    def predict(self, nir, rgb):
        gray = self.nets["nir_to_gray"](nir)[-1]
        return nir, self.nets["colorizer"](gray)[-1], rgb


STAGE_CLASSES: dict[str, type[Stage]] = {"translate": TranslateStage, "pretrain": PretrainStage, "finetune": FinetuneStage}  # what each trains


def make_stage(name: str, nets, cfg: StageConfig, ctx, pool_size: int) -> Stage:
    if name == "translate":
        return TranslateStage(nets, cfg, ctx, pool_size)
    if name == "pretrain":
        return PretrainStage(nets, cfg, ctx)
    if name == "finetune":
        return FinetuneStage(nets, cfg, ctx, pool_size)
    raise ValueError(f"unknown stage {name!r}; expected translate, pretrain or finetune")
