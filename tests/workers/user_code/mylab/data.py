"""Model workloads a user writes with real data pipelines: a Dataset with augmentation, inputs
as a tuple or a dict of tensors, Dropout, and a model vmap cannot run."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.utils.data import Dataset

from optisweep.workloads import Built, WorkloadConfig


class DataConfig(WorkloadConfig):
    """How the data comes (``form``) and how much the model drops out."""

    form: Literal["dataset", "tuple", "dict"] = "dataset"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


def _points(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator).to(torch.get_default_dtype())
    mask = (torch.rand(n, 4, generator=generator) > 0.2).to(x.dtype)
    y = (x * mask).sum(dim=1, keepdim=True).tanh().squeeze(1)
    return x, mask, y


class Noisy(Dataset[tuple[tuple[Tensor, Tensor], Tensor]]):
    """(x, mask) -> y, with noise added to x by torch's global RNG (an augmentation)."""

    def __init__(self, n: int, seed: int, *, noise: float) -> None:
        self.x, self.mask, self.y = _points(n, seed)
        self.noise = noise

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
        x = self.x[i] + self.noise * torch.randn(4, dtype=self.x.dtype)
        return (x, self.mask[i]), self.y[i]


class Masked(nn.Module):
    """An MLP of x * mask, taking them as two inputs."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.net(x * mask).squeeze(-1)


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return nn.functional.mse_loss(output, target)


class Pipelines:
    """The same task through a Dataset, tuple inputs or dict inputs."""

    name = "pipelines"
    packable = True
    metric_names: tuple[str, ...] = ()
    config_model = DataConfig

    def build(self, config: DataConfig, *, seed: int, device: torch.device) -> Built:
        model = Masked(config.dropout).to(device)
        if config.form == "dataset":
            train: object = Noisy(96, 0, noise=0.1)
            val: object = Noisy(32, 1, noise=0.0)
        else:
            x, mask, y = (t.to(device) for t in _points(96, 0))
            vx, vmask, vy = (t.to(device) for t in _points(32, 1))
            if config.form == "tuple":
                train, val = ((x, mask), y), ((vx, vmask), vy)
            else:
                train, val = ({"x": x, "mask": mask}, y), ({"x": vx, "mask": vmask}, vy)
        return Built(model=model, train=train, val=val, loss_fn=_mse, metrics=lambda o, t: {})  # type: ignore[arg-type]


class ItemModel(nn.Module):
    """Reads a value back with .item() in forward: fine alone, impossible under vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = 2.0 if self.linear.weight.abs().max().item() > 100 else 1.0
        return self.linear(x).squeeze(-1) * scale


class Unpackable:
    """Says it packs; a stacked step proves otherwise."""

    name = "unpackable"
    packable = True
    metric_names: tuple[str, ...] = ()
    config_model = WorkloadConfig

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        x, _, y = (t.to(device) for t in _points(64, 0))
        return Built(
            model=ItemModel().to(device),
            train=(x, y),
            val=(x, y),
            loss_fn=_mse,
            metrics=lambda o, t: {},
        )


class MisshapenModel(nn.Module):
    """A shape bug: its second layer expects 8 features where the first gives 6."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 6)
        self.second = nn.Linear(8, 1)

    def forward(self, x: Tensor) -> Tensor:
        hidden = torch.relu(self.first(x))
        return self.second(hidden).squeeze(-1)


class Misshapen(Unpackable):
    """Builds a model that cannot run, alone or packed."""

    name = "misshapen"

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        x, _, y = (t.to(device) for t in _points(64, 0))
        return Built(
            model=MisshapenModel().to(device),
            train=(x, y),
            val=(x, y),
            loss_fn=_mse,
            metrics=lambda o, t: {},
        )


pipelines = Pipelines()
unpackable = Unpackable()
misshapen = Misshapen()
