"""Training configs (``configs/train/*.yaml``) as typed dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from nirvision.config import load_yaml

STAGES = ("translate", "pretrain", "finetune")
SEED_MIN, SEED_MAX = -(2**31), 2**32 - 1  # torch seeds are 64-bit; per-epoch seeds are seed * 1_000_003 + ...


@dataclass
class DataConfig:
    """Paired NIR/RGB folder, optional unpaired folders, split and augmentation (paper III-A)."""

    root: str = "../shared/data/vcip2020/train"
    unpaired: list[str] = field(default_factory=list)  # folders of extra gray or RGB images
    image_size: int = 256  # every training image must be this size, square (H = W): other pairs are cropped or resized first
    # 16-bit NIR: the bits that hold the picture (10, 12, 14, 16), one depth for every file as
    # colorize's --input-bits; auto: the fewest that hold the largest value of all of them
    input_bits: int | str = "auto"
    val_fraction: float = 0.08
    split_seed: int = 0
    photo_group: int = 1  # groups of this many consecutive numbers stay on one side of the split (1: none)
    split_by_content: bool = True  # crops of one photograph (found by content) stay on one side
    crop: int = 256  # training crop (after augmentation)
    scale_min: float = 1.0  # random scaling of the whole pair
    scale_max: float = 1.25
    crop_min: float = 0.6  # random-size crop: side as a fraction of the (scaled) image,
    crop_max: float = 1.0  # drawn from [crop_min, crop_max], then resampled to `crop`
    hflip: bool = True  # mirroring
    contrast: float = 0.2  # contrast factor drawn from [1 - c, 1 + c], the same for both images
    skip_bad: bool = False  # skip (and count) unreadable/unpaired/wrong-size images instead of failing

    def validate(self) -> None:
        from nirvision.runtime.frames import check_input_bits

        check_input_bits(self.input_bits, "data.input_bits")  # an InputError (a ValueError): said with the file
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.photo_group < 1:
            raise ValueError(f"data.photo_group must be 1 or more, got {self.photo_group}")
        if not 1.0 <= self.scale_min <= self.scale_max:
            raise ValueError("data.scale_min and scale_max must satisfy 1 <= scale_min <= scale_max")
        if not 0 < self.crop_min <= self.crop_max <= 1:
            raise ValueError("data.crop_min and crop_max must satisfy 0 < crop_min <= crop_max <= 1")
        if not 0 <= self.contrast < 1:
            raise ValueError("data.contrast must lie in [0, 1)")


@dataclass
class StageConfig:
    """One stage's schedule. ``decay_from`` is the fraction of epochs after which the learning
    rate falls linearly to zero (1.0 keeps it constant, as the paper states)."""

    epochs: int
    lr: float = 1e-4
    batch_size: int = 10
    decay_from: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    iters_per_epoch: int = 0  # 0: one pass over the training pairs
    lambda_cyc: float = 1.0
    lambda_idt: float = 1.0
    lambda_tran: float = 1.0
    lambda_feat: float = 1.0
    mix_alpha: float = 0.84  # L_mix = alpha (1 - MS-SSIM) + (1 - alpha) L1; 0.84 as Zhao et al.
    pixel_loss: str = "l1"  # the pixel term of L_mix: l1 (the paper) or l2 (mean squared error)
    keep_best: bool = False  # the stage's output is the epoch with the best validation PSNR, not the last
    ema: float = 0.0  # > 0: validate and output an exponential moving average of the generators' weights with this decay per step (train/ema.py)
    # Per-stage augmentation: where set, these replace the data section's values for this stage.
    crop: int | None = None
    crop_min: float | None = None
    crop_max: float | None = None
    scale_min: float | None = None
    scale_max: float | None = None

    AUGMENT_FIELDS = ("crop", "crop_min", "crop_max", "scale_min", "scale_max")

    def data_for_stage(self, data: DataConfig) -> DataConfig:
        """The data section with this stage's augmentation overrides applied (and checked)."""
        changes = {k: getattr(self, k) for k in self.AUGMENT_FIELDS if getattr(self, k) is not None}
        out = replace(data, **changes)
        out.validate()
        return out

    def validate(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")
        if not 0 <= self.mix_alpha <= 1:
            raise ValueError("mix_alpha must lie in [0, 1]")
        if self.pixel_loss not in ("l1", "l2"):
            raise ValueError(f"pixel_loss must be l1 or l2, got {self.pixel_loss!r}")
        if self.crop is not None and self.crop < 8:
            raise ValueError(f"crop must be at least 8 pixels, got {self.crop}")
        if not 0 <= self.decay_from <= 1:
            raise ValueError("decay_from must lie in [0, 1]")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must lie in [0, 1) (0: off; 0.999 averages over about 1000 steps), got {self.ema}")
        if self.iters_per_epoch < 0:
            raise ValueError(f"iters_per_epoch must be 0 (one pass over the training pairs) or more, got {self.iters_per_epoch}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1) (Adam's beta1, beta2, e.g. [0.5, 0.999]), got {self.betas}")


@dataclass
class TrainConfig:
    name: str
    model: str  # lite, paper, or a model YAML path
    data: DataConfig
    translate: StageConfig
    pretrain: StageConfig
    finetune: StageConfig
    seed: int = 0
    output: str = "runs"
    threads: int = 0  # torch intra-op threads per process (0: torch's default)
    pool_size: int = 50  # CycleGAN image pool
    sample_count: int = 6  # validation images in the sample grid
    bf16: bool = False  # bf16 autocast on the CPU

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def validate(self) -> None:
        if not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"name must be a plain folder name (the run's folder under output), got {self.name!r}")
        if not SEED_MIN <= self.seed <= SEED_MAX:
            raise ValueError(f"seed must lie in [{SEED_MIN}, {SEED_MAX}], got {self.seed}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 (torch's default) or more, got {self.threads}")
        if self.pool_size < 0:
            raise ValueError(f"pool_size must be 0 (no image pool) or more, got {self.pool_size}")
        if self.sample_count < 1:
            raise ValueError(f"sample_count must be 1 or more, got {self.sample_count}")
        for name in STAGES:  # the data section with each stage's overrides, checked now, not when the stage starts
            try:
                self.stage(name).data_for_stage(self.data)
            except ValueError as exc:
                raise ValueError(f"{name}: its augmentation settings (with the data section's) are invalid: {exc}") from None

    def check_sizes(self, multiples: dict[str, int], minimums: dict[str, int] | None = None) -> None:
        """Refuse sizes the networks cannot run at. ``multiples``: each stage's networks' size
        multiple, and ``validation`` for the full-size validation images; ``minimums``: the
        smallest side each can train (or validate) at, keyed the same way."""
        minimums = minimums or {}
        if self.data.image_size % multiples["validation"]:
            raise ValueError(f"data.image_size: {self.data.image_size} is not a multiple of {multiples['validation']}, "
                             f"which model {self.model} needs (validation runs on whole images)")
        if self.data.image_size < minimums.get("validation", 0):
            raise ValueError(f"data.image_size: {self.data.image_size} is below {minimums['validation']}, the smallest side "
                             f"model {self.model} runs at (validation runs on whole images)")
        for name in STAGES:
            crop = self.stage(name).data_for_stage(self.data).crop
            key = f"{name}.crop" if self.stage(name).crop is not None else "data.crop"
            if crop % multiples[name]:
                raise ValueError(f"{key}: the {name} stage's crop {crop} is not a multiple of {multiples[name]}, which model {self.model} needs")
            if crop < minimums.get(name, 0):
                raise ValueError(f"{key}: the {name} stage's crop {crop} is below {minimums[name]}, the smallest side "
                                 f"model {self.model}'s networks train at in that stage")

    def run_dir(self) -> Path:
        return Path(self.output) / self.name


def load_train_config(path: str | Path) -> TrainConfig:
    return load_yaml(TrainConfig, path)
