"""Convolutional networks with BatchNorm: 1-D, 2-D and 3-D."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ResidualBlock, conv_bn


class CNNBN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, 16), nn.MaxPool2d(2), conv_bn(16, 32), nn.MaxPool2d(2), conv_bn(32, 64),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def make_cnn_bn() -> dict:
    return {
        "model": CNNBN(),
        "inputs": lambda b: torch.randn(b, 3, 32, 32),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 10,
    }


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.example_inputs = (torch.randn(2, 1, 28, 28),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


def make_lenet() -> nn.Module:
    """A bare module with an ``example_inputs`` attribute (the Lightning convention)."""
    return LeNet()


class ResNetTiny(nn.Module):
    def __init__(self, width: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, width)
        self.stage1 = nn.Sequential(ResidualBlock(width), ResidualBlock(width))
        self.down = conv_bn(width, 2 * width, stride=2)
        self.stage2 = nn.Sequential(ResidualBlock(2 * width), ResidualBlock(2 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))


def make_resnet_tiny() -> dict:
    return {
        "model": ResNetTiny(),
        "inputs": lambda b: torch.randn(b, 3, 32, 32),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 10,
    }


class MobileNetTiny(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(16), nn.Hardswish()]
        channels = 16
        for out, stride in ((24, 1), (32, 2), (48, 1), (64, 2)):
            layers += [conv_bn(channels, channels, stride=stride, groups=channels),
                       nn.Conv2d(channels, out, 1, bias=False), nn.BatchNorm2d(out),
                       nn.Hardswish()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_mobilenet_tiny() -> dict:
    return {"model": MobileNetTiny(), "inputs": lambda b: torch.randn(b, 3, 64, 64)}


class UNetTiny(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.enc1 = conv_bn(1, 16)
        self.enc2 = conv_bn(16, 32, stride=2)
        self.mid = conv_bn(32, 32)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = conv_bn(32, 16)
        self.out = nn.Conv2d(16, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc1(x)
        h = self.up(self.mid(self.enc2(skip)))
        return self.out(self.dec(torch.cat([h, skip], dim=1)))


def make_unet_tiny() -> dict:
    """Segmentation: per-pixel logits; no loss declared, so training uses the surrogate."""
    return {"model": UNetTiny(), "inputs": lambda b: torch.randn(b, 1, 32, 32)}


class AudioCNN(nn.Module):
    def __init__(self, classes: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 16, 9, stride=2, padding=4), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 9, stride=2, padding=4), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 32, 9, stride=2, padding=4), nn.BatchNorm1d(32), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_cnn1d_audio() -> dict:
    return {
        "model": AudioCNN(),
        "inputs": lambda b: torch.randn(b, 1, 1600),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 8,
    }


class VideoCNN(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(), nn.MaxPool3d(2),
            nn.Conv3d(8, 16, 3, padding=1), nn.BatchNorm3d(16), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_cnn3d_video() -> dict:
    return {"model": VideoCNN(), "inputs": lambda b: torch.randn(b, 3, 8, 24, 24),
            "loss": nn.CrossEntropyLoss(), "num_classes": 5}
