"""The char-lm workload: a small causal transformer predicting the next byte of Python source.

The text is the Python standard library's own source (a fixed list of modules), so it ships
with every interpreter and nothing is downloaded; the last module is held out for validation.
"""

from __future__ import annotations

import math
import sysconfig
from functools import lru_cache
from pathlib import Path

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from optisweep.workers.workloads.base import Built, WorkloadConfig

VOCAB = 256
"""Bytes are the tokens: no tokenizer to ship or train."""

TRAIN_MODULES = (
    "argparse.py",
    "dataclasses.py",
    "functools.py",
    "inspect.py",
    "textwrap.py",
    "typing.py",
    "json/decoder.py",
    "json/encoder.py",
    "string.py",
    "heapq.py",
    "fractions.py",
    "statistics.py",
    "shlex.py",
    "enum.py",
    "contextlib.py",
)
VAL_MODULE = "difflib.py"


class CharLMConfig(WorkloadConfig):
    """The transformer's size and how much text a trial sees per epoch."""

    context: int = Field(default=64, ge=2, le=4_096)
    d_model: int = Field(default=64, ge=8, le=4_096)
    heads: int = Field(default=4, ge=1, le=64)
    layers: int = Field(default=2, ge=1, le=48)
    train_sequences: int = Field(default=512, ge=1, le=1_000_000)
    val_sequences: int = Field(default=64, ge=1, le=100_000)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> CharLMConfig:
        if self.d_model % self.heads:
            raise ValueError(
                f"d_model must be a multiple of heads ({self.heads}), got {self.d_model}"
            )
        return self


@lru_cache(maxsize=4)
def _module_bytes(names: tuple[str, ...]) -> Tensor:
    root = Path(sysconfig.get_paths()["stdlib"])
    text = b"\n".join((root / name).read_bytes() for name in names if (root / name).is_file())
    if not text:
        raise FileNotFoundError(f"char-lm: none of {names} found under {root}")
    return torch.frombuffer(bytearray(text), dtype=torch.uint8).to(torch.int64)


def _windows(corpus: Tensor, count: int, context: int) -> tuple[Tensor, Tensor]:
    """``count`` windows of ``context`` + 1 bytes spread evenly over the corpus: inputs, targets."""
    span = context + 1
    if len(corpus) < span:
        raise ValueError(f"char-lm: the text has {len(corpus)} bytes, fewer than context + 1")
    starts = torch.linspace(0, len(corpus) - span, count).round().to(torch.int64)
    windows = corpus[starts[:, None] + torch.arange(span)]
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


class Block(nn.Module):
    """A pre-norm transformer block: causal self-attention, then a 4x MLP, each residual."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [N, T, d] -> [N, T, d]."""
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        # A packed pass folds its members into N, so this is one fused attention for all of
        # them (under vmap, torch would run it member by member).
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class Positions(nn.Module):
    """Learned position embeddings, added to the tokens' (a module of its own, so a packed
    pass runs everything else fused and only this under vmap)."""

    def __init__(self, context: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(context, d_model) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        """x [N, T, d] plus the first T positions."""
        return x + self.weight[: x.shape[-2]]


class CharTransformer(nn.Module):
    """Byte embeddings plus learned positions, ``layers`` blocks, and a byte classifier."""

    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, config.d_model)
        self.position = Positions(config.context, config.d_model)
        self.blocks = nn.Sequential(
            *(Block(config.d_model, config.heads) for _ in range(config.layers))
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, VOCAB)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [N, T] -> next-byte logits [N, T, 256]."""
        return self.head(self.norm(self.blocks(self.position(self.embed(tokens)))))


def sequence_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over every position of every sequence."""
    return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def byte_metrics(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """Validation bits per byte and next-byte accuracy."""
    loss = sequence_cross_entropy(logits, targets).item()
    accuracy = (logits.argmax(dim=-1) == targets).float().mean().item()
    return {"val_bits_per_byte": loss / math.log(2), "val_accuracy": accuracy}


class CharLM:
    """A small GPT-style byte-level language model on the standard library's source."""

    name = "char-lm"
    packable = True
    metric_names: tuple[str, ...] = ("val_bits_per_byte", "val_accuracy")
    config_model = CharLMConfig

    def build(self, config: CharLMConfig, *, seed: int, device: torch.device) -> Built:
        """The transformer and fixed windows of training and held-out text on ``device``."""
        model = CharTransformer(config).to(device)
        train = _windows(_module_bytes(TRAIN_MODULES), config.train_sequences, config.context)
        val = _windows(_module_bytes((VAL_MODULE,)), config.val_sequences, config.context)
        return Built(
            model=model,
            train=(train[0].to(device), train[1].to(device)),
            val=(val[0].to(device), val[1].to(device)),
            loss_fn=sequence_cross_entropy,
            metrics=byte_metrics,
        )
