"""Choosing the next token: greedy, or sampling with temperature, top-k and top-p, seeded for reproducibility."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .checks import check_int
from .errors import InputError


@dataclass
class SamplingConfig:
    """How `generate` picks tokens; validated once so the loop stays simple.

    Attributes:
        do_sample: Draw from the distribution; False picks the most likely token.
        temperature: Divides the logits; above 0.
        top_k: Keep only the k most likely tokens (None: all).
        top_p: Keep the smallest set of tokens whose probability reaches p, in (0, 1] (None: all).
        seed: Seed of the private generator (None: a random one).
        generator: The private torch generator, seeded by `make` when sampling.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, repr=False, compare=False)

    @classmethod
    def make(cls, do_sample: bool, temperature: float, top_k: int | None, top_p: float | None, seed: int | None):
        """Validate user settings and seed a private generator (never the global RNG).

        Args:
            do_sample: Draw from the distribution instead of taking the most likely token.
            temperature: Divides the logits; must be above 0.
            top_k: Keep only the k most likely tokens, an integer >= 1, or None.
            top_p: Nucleus sampling threshold in (0, 1], or None.
            seed: Seed for reproducible draws, or None for a random one.

        Returns:
            The validated SamplingConfig.
        """
        if not isinstance(temperature, int | float) or not temperature > 0:
            raise InputError(f"temperature must be > 0, got {temperature!r}")
        top_k = None if top_k is None else check_int(top_k, "top_k", minimum=1, hint=" or None")
        if top_p is not None and not (isinstance(top_p, int | float) and 0 < top_p <= 1):
            raise InputError(f"top_p must be in (0, 1] or None, got {top_p!r}")
        seed = None if seed is None else check_int(seed, "seed", hint=" or None")
        gen = None
        if do_sample:
            gen = torch.Generator()
            gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))
        return cls(bool(do_sample), float(temperature), top_k, top_p, seed, gen)

    def to_dict(self) -> dict:
        """Settings as plain data, for the run's record.

        Returns:
            The settings without the generator.
        """
        d = asdict(self)
        d.pop("generator")
        return d


def filter_logits(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Apply temperature, top-k and top-p to one step's logits (vocab,).

    Args:
        logits: One step's logits, shaped (vocab,).
        cfg: The sampling settings.

    Returns:
        The scaled logits with filtered-out tokens set to -inf.
    """
    out = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < out.shape[-1]:
        kth = torch.topk(out, cfg.top_k).values[-1]
        out = out.masked_fill(out < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1:
        sorted_logits, order = torch.sort(out, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= cfg.top_p  # keep the token that crosses top_p
        out = out.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return out


def choose_next(logits: torch.Tensor, cfg: SamplingConfig) -> int:
    """The next token id: argmax when not sampling, else a draw from the filtered distribution.

    Args:
        logits: One step's logits, shaped (vocab,).
        cfg: The sampling settings (and generator).

    Returns:
        The chosen token id.
    """
    if not cfg.do_sample:
        return int(torch.argmax(logits))
    probs = torch.softmax(filter_logits(logits.float().cpu(), cfg), dim=-1)
    return int(torch.multinomial(probs, 1, generator=cfg.generator))
