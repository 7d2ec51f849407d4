"""The benchmarked networks in plain `torch.nn`, as the PyTorch reference (torch is optional).

They mirror the Keras builders layer for layer, so that both frameworks do the same arithmetic:

- `resnet20()`: CIFAR ResNet-20 (He et al. 2016, Section 4.2), option A shortcuts (subsample and zero-pad
  the channels), 269,722 trainable parameters for 10 classes.
- `resnet50()`: ImageNet ResNet-50 with the stride in the first 1x1 of a block (the paper's and
  keras.applications' placement; 3.858 G MACs at 224), projection shortcuts, 25,557,032 parameters.
- `googlenet()`: GoogLeNet as `keras_convnets.GoogLeNet()` builds it by default (batch norm after every
  conv, epsilon 1e-3, a real 5x5 conv, ceil-mode 3x3/2 max pools, both auxiliary heads of 5x5/3 average
  pooling, 1x1 conv 128, FC 1024, FC). In training mode it returns `(main, aux1, aux2)` logits.

torchvision is not used: it does not import beside torch 2.13 here (see the shared FACTS.md notes).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, eps: float = 1e-5) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels, eps=eps, momentum=0.1),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs; an option-A shortcut (strided subsampling and zero channels) when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride)
        self.conv2 = conv_bn(out_channels, out_channels, 3)
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        s = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:
            s = F.pad(s, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + s)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, classes: int = 10):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = conv_bn(3, 16, 3)
        blocks, channels = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for index in range(n):
                blocks.append(BasicBlock(channels, width, 2 if (index == 0 and stage > 0) else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, width: int, stride: int):
        super().__init__()
        out_channels = 4 * width
        self.conv1 = conv_bn(in_channels, width, 1, stride)
        self.conv2 = conv_bn(width, width, 3)
        self.conv3 = conv_bn(width, out_channels, 1)
        self.shortcut = (
            conv_bn(in_channels, out_channels, 1, stride) if (stride > 1 or in_channels != out_channels) else None
        )

    def forward(self, x):
        y = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = conv_bn(3, 64, 7, 2)
        blocks, channels = [], 64
        for stage, (repeats, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
            for index in range(repeats):
                blocks.append(Bottleneck(channels, width, 2 if (index == 0 and stage > 0) else 1))
                channels = 4 * width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2, padding=1)
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def conv_unit(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv_bn(in_channels, out_channels, kernel, stride, eps=1e-3), nn.ReLU(inplace=True))


# Szegedy et al. 2014, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_TABLE = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)


class Inception(nn.Module):
    def __init__(self, in_channels, n1, r3, n3, r5, n5, proj):
        super().__init__()
        self.branch1 = conv_unit(in_channels, n1, 1)
        self.branch2 = nn.Sequential(conv_unit(in_channels, r3, 1), conv_unit(r3, n3, 3))
        self.branch3 = nn.Sequential(conv_unit(in_channels, r5, 1), conv_unit(r5, n5, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), conv_unit(in_channels, proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class AuxHead(nn.Module):
    def __init__(self, in_channels: int, classes: int, grid: int = 4):
        super().__init__()
        self.conv = conv_unit(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * grid * grid, 1024)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, classes)

    def forward(self, x):
        x = self.conv(F.avg_pool2d(x, 5, 3))
        return self.fc2(self.dropout(F.relu(self.fc1(torch.flatten(x, 1)))))


def aux_grid(size: int) -> int:
    """Side of the aux heads' pooled grid for an input of side `size` (4 at 224)."""
    side = (size - 1) // 2 + 1  # conv1 7x7/2
    for _ in range(3):  # pool1, pool2, pool3: ceil-mode 3x3/2
        side = (side - 2) // 2 + 1 + ((side - 2) % 2 > 0) if side > 2 else 1
    return (side - 5) // 3 + 1


class GoogLeNet(nn.Module):
    def __init__(self, classes: int = 1000, size: int = 224):
        super().__init__()
        self.stem = nn.Sequential(
            conv_unit(3, 64, 7, 2),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            conv_unit(64, 64, 1),
            conv_unit(64, 192, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        modules, channels = {}, 192
        for name, *widths in INCEPTION_TABLE:
            modules[name] = Inception(channels, *widths)
            channels = widths[0] + widths[2] + widths[4] + widths[5]
        self.inception = nn.ModuleDict(modules)
        self.aux1 = AuxHead(512, classes, aux_grid(size))
        self.aux2 = AuxHead(528, classes, aux_grid(size))
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.stem(x)
        aux = []
        for name, module in self.inception.items():
            if name in ("4a", "5a"):
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            x = module(x)
            if self.training and name == "4a":
                aux.append(self.aux1(x))
            if self.training and name == "4d":
                aux.append(self.aux2(x))
        x = self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))
        return (x, *aux) if self.training else x


def resnet20(classes: int = 10, size: int = 32) -> nn.Module:
    return CifarResNet(20, classes)


def resnet50(classes: int = 1000, size: int = 224) -> nn.Module:
    return ResNet50(classes)


def googlenet(classes: int = 1000, size: int = 224) -> nn.Module:
    return GoogLeNet(classes, size)


MODELS = {"resnet20": resnet20, "resnet50": resnet50, "googlenet": googlenet}


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class TrainStep:
    """One SGD (momentum 0.9) step of cross-entropy on a fixed batch, channels_last, optionally under bf16 autocast.

    Calling it runs `steps` steps and returns the last loss (as a float, which waits for the work to finish).
    """

    def __init__(self, name: str, *, batch: int, size: int, classes: int, bfloat16: bool, aux_weight: float = 0.3):
        torch.manual_seed(0)
        self.model = MODELS[name](classes, size).to(memory_format=torch.channels_last).train()
        self.images = torch.rand(batch, 3, size, size).mul_(255).contiguous(memory_format=torch.channels_last)
        self.labels = torch.randint(0, classes, (batch,))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        self.bfloat16 = bfloat16
        self.aux_weight = aux_weight

    def _loss(self):
        outputs = self.model(self.images)
        if isinstance(outputs, tuple):
            main, *aux = outputs
            return F.cross_entropy(main, self.labels) + self.aux_weight * sum(
                F.cross_entropy(a, self.labels) for a in aux
            )
        return F.cross_entropy(outputs, self.labels)

    def __call__(self, steps: int = 1) -> float:
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
                loss = self._loss()
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())
