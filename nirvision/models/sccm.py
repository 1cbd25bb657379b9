"""Supervised colour-consistency module (MPFNet section II-A; after MPRNet's supervised attention module)."""
from __future__ import annotations

import torch
from torch import nn


class SCCM(nn.Module):
    """Predicts the scale's image and gates the features with attention computed from it.

    prediction = tanh(conv(features) + input image), the input image broadcast to the output
    channels (gray -> RGB for the colorizer); attention = sigmoid(conv(prediction));
    features' = conv(features) * attention + features. The prediction is supervised per scale.

    With ``carry_features`` False (the finest scale, whose features feed no further scale) only
    the prediction is made and the features are returned unchanged, as MPRNet's last stage has
    no SAM: the attention path would be parameters without a gradient and wasted compute.
    """

    def __init__(self, channels: int, image_channels: int, input_channels: int | None = None, carry_features: bool = True):
        super().__init__()
        self.image_channels = image_channels
        self.repeats = image_channels // (input_channels or image_channels)
        self.carry_features = carry_features
        self.to_image = nn.Conv2d(channels, image_channels, 3, padding=1)
        if carry_features:
            self.from_image = nn.Conv2d(image_channels, channels, 3, padding=1)
            self.refine = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.repeats > 1:
            # gray -> RGB: one copy of the input per output colour (pixel-unshuffled layouts
            # keep each colour's r*r sub-pixels together, so repeating blocks is the broadcast).
            image = image.repeat(1, self.repeats, 1, 1)
        prediction = torch.tanh(self.to_image(features) + image)
        if not self.carry_features:
            return features, prediction
        attention = torch.sigmoid(self.from_image(prediction))
        return self.refine(features) * attention + features, prediction
