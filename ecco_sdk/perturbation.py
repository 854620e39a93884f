"""Attributions computed through captum: gradient SHAP, LIME, KernelSHAP, Shapley value sampling and occlusion.

The features are token positions: all embedding dimensions of a position are replaced by the
baseline together. Only positions that can influence some target (in scope, before the last target)
are features, and one forward pass over a perturbed input yields every target's value. captum's
FeatureAblation family (occlusion, Shapley value sampling) attributes all targets from those shared
passes; LIME, KernelSHAP and gradient SHAP take one target per call, so for LIME and KernelSHAP the
forward passes are memoised (same seed, same perturbations) and only the first target pays for them;
gradient SHAP needs one backward pass per target anyway. Every sampled method takes a `seed`: the same
seed gives the same result, and the global random state is left as it was.

DeepLift and DeepLiftShap are registered only to refuse with the reason (see `_deeplift`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

# The underscore names are attribution.py's internals shared by the analyses (one problem, one result builder).
from .attribution import (
    PrimaryAttribution,
    _position_result,
    _Problem,
    _result,
    _values_no_grad,
    _values_with_grad,
    register_method,
)
from .cancel import checkpoint
from .checks import check_int
from .errors import InputError, UnsupportedModelError

if TYPE_CHECKING:
    from .lm import LM


@dataclass
class _Features:
    """The positions captum perturbs, as one (1, F, H) input with its baseline and per-position feature mask."""

    positions: torch.Tensor  # (F,) long
    inputs: torch.Tensor
    baselines: torch.Tensor
    mask: torch.Tensor


def _features(prob: _Problem) -> _Features:
    """Positions in scope that can influence at least one target."""
    positions = torch.nonzero(prob.influence_mask().any(0)).flatten()
    n, h = len(positions), prob.embeds.shape[1]
    dev = prob.lm.device
    return _Features(
        positions=positions,
        inputs=prob.embeds[positions][None].to(dev),
        baselines=prob.baseline[positions][None].to(dev),
        mask=torch.arange(n, device=dev)[None, :, None].expand(1, n, h).contiguous(),
    )


def _forward(prob: _Problem, feats: _Features, *, grad: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """captum's forward function: the perturbed feature positions put back into the full input; (m, targets)."""
    full = prob.embeds[None].to(feats.inputs.device)
    index = feats.positions.to(feats.inputs.device)

    def forward(x: torch.Tensor) -> torch.Tensor:
        checkpoint()
        filled = full.expand(x.shape[0], -1, -1).index_copy(1, index, x.to(full.dtype))
        return _values_with_grad(prob, filled) if grad else _values_no_grad(prob, filled)

    return forward


def _memoised(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same forward, answering a batch it has seen (byte for byte) from memory: one pass serves all targets."""
    seen: dict[bytes, torch.Tensor] = {}

    def cached(x: torch.Tensor) -> torch.Tensor:
        key = hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest() + bytes(
            str(x.shape), "ascii"
        )
        if key not in seen:
            seen[key] = forward(x)
        return seen[key]

    return cached


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and numpy (captum draws from both) for a block, restoring the global random state after."""
    seed = check_int(seed, "seed")
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def _positive(value: int, name: str) -> int:
    """`value` as an int if it is a count of at least 1 (samples, window, stride), else an InputError."""
    return check_int(value, name, minimum=1, what="a positive integer")


def _spread(prob: _Problem, feats: _Features, per_feature: torch.Tensor) -> torch.Tensor:
    """(targets, F) feature scores back onto (targets, L) sequence positions (zeros elsewhere)."""
    out = torch.zeros(prob.n_targets, prob.seq_len)
    out[:, feats.positions] = per_feature.detach().float().cpu()
    return out


# ----- gradient SHAP ---------------------------------------------------------------------------------


@register_method(
    "gradient_shap",
    "expected gradients: gradient x (input - baseline) at random points between baseline and (noisy) input",
    aliases=("gradientshap", "grad_shap"),
    options={"seed": 0, "n_samples": 20, "stdevs": 0.0},
)
def gradient_shap(prob: _Problem, batch: int, *, seed: int, n_samples: int, stdevs: float) -> PrimaryAttribution:
    """captum's GradientShap per target (its gradient is taken for one output at a time).

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Unused: captum's GradientShap evaluates a target's `n_samples` points in one batch.
        seed: Seeds torch and numpy for the draws: the same seed gives the same result, and the global
            random state is restored after.
        n_samples: Random points per target, each between the baseline and the (noisy) input (>= 1).
        stdevs: Standard deviation of the Gaussian noise added to the input at each point (0: none).

    Returns:
        The attribution, with per-dimension `raw` scores (gradient x (input - baseline), averaged).
    """
    from captum.attr import GradientShap  # captum loads only when this method runs

    _positive(n_samples, "n_samples")
    feats = _features(prob)
    method = GradientShap(_forward(prob, feats, grad=True))
    raw = torch.zeros(prob.n_targets, *prob.embeds.shape)
    for j in range(prob.n_targets):
        with _seeded(seed), torch.enable_grad():
            a = method.attribute(
                feats.inputs, baselines=feats.baselines, target=j, n_samples=n_samples, stdevs=float(stdevs)
            )
        raw[j, feats.positions] = a[0].detach().float().cpu()
    mask = prob.influence_mask()
    raw = raw * mask[:, :, None]
    return _result(
        prob, "gradient_shap", raw, mask, None, None, {"seed": seed, "n_samples": n_samples, "stdevs": stdevs}
    )


# ----- sampled surrogate models: LIME and KernelSHAP ------------------------------------------------


def _per_target(prob: _Problem, feats: _Features, attribute: Callable[..., torch.Tensor], seed: int) -> torch.Tensor:
    """Run a one-target captum method for each target with the same seed; (targets, F) scores."""
    scores = []
    for j in range(prob.n_targets):
        with _seeded(seed):
            a = attribute(feats.inputs, baselines=feats.baselines, target=j, feature_mask=feats.mask)
        scores.append(a[0, :, 0])
    return torch.stack(scores)


@register_method(
    "lime",
    "LIME: a ridge regression of the target on which positions were kept, over random subsets of positions",
    options={"seed": 0, "n_samples": 100, "alpha": 1.0},
)
def lime(prob: _Problem, batch: int, *, seed: int, n_samples: int, alpha: float) -> PrimaryAttribution:
    """captum's Lime with a ridge surrogate (its default lasso, alpha 0.01, zeroes probabilities this small).

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Perturbed inputs per forward pass (captum's `perturbations_per_eval`).
        seed: Seeds torch and numpy for the draws: the same seed gives the same result, and the global
            random state is restored after.
        n_samples: Random subsets of positions to keep (the same subsets for every target; >= 1).
        alpha: The ridge penalty of the linear surrogate fitted per target.

    Returns:
        One signed score per (target, position); no per-dimension `raw`.
    """
    from captum._utils.models.linear_model import SkLearnRidge  # captum loads only when this method runs
    from captum.attr import Lime  # captum loads only when this method runs

    _positive(n_samples, "n_samples")
    feats = _features(prob)
    method = Lime(_memoised(_forward(prob, feats, grad=False)), interpretable_model=SkLearnRidge(alpha=float(alpha)))

    def attribute(*args, **kw):
        return method.attribute(*args, n_samples=n_samples, perturbations_per_eval=batch, **kw)

    effects = _spread(prob, feats, _per_target(prob, feats, attribute, seed))
    return _position_result(prob, "lime", effects, {"seed": seed, "n_samples": n_samples, "alpha": alpha})


@register_method(
    "kernel_shap",
    "KernelSHAP: Shapley values estimated by a weighted regression over random subsets of positions",
    aliases=("kernelshap",),
    options={"seed": 0, "n_samples": 100},
)
def kernel_shap(prob: _Problem, batch: int, *, seed: int, n_samples: int) -> PrimaryAttribution:
    """captum's KernelShap over positions.

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Perturbed inputs per forward pass (captum's `perturbations_per_eval`).
        seed: Seeds the subsets drawn (torch and numpy); the global random state is restored after.
        n_samples: Random subsets of positions, weighted by the Shapley kernel in the regression (>= 1); the
            same subsets serve every target.

    Returns:
        One signed score per (target, position); no per-dimension `raw`.
    """
    from captum.attr import KernelShap  # captum loads only when this method runs

    _positive(n_samples, "n_samples")
    feats = _features(prob)
    method = KernelShap(_memoised(_forward(prob, feats, grad=False)))

    def attribute(*args, **kw):
        return method.attribute(*args, n_samples=n_samples, perturbations_per_eval=batch, **kw)

    effects = _spread(prob, feats, _per_target(prob, feats, attribute, seed))
    return _position_result(prob, "kernel_shap", effects, {"seed": seed, "n_samples": n_samples})


# ----- the FeatureAblation family: all targets from one set of forward passes ---------------------------


@register_method(
    "shapley_sampling",
    "Shapley value sampling: each position's mean marginal effect over random orders of adding positions",
    aliases=("shapley", "shapley_value_sampling", "shapleyvaluesampling"),
    options={"seed": 0, "n_samples": 8},
)
def shapley_sampling(prob: _Problem, batch: int, *, seed: int, n_samples: int) -> PrimaryAttribution:
    """captum's ShapleyValueSampling; its multi-output mode attributes every target from the same passes.

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Perturbed inputs per forward pass (captum's `perturbations_per_eval`).
        seed: Seeds torch and numpy for the draws: the same seed gives the same result, and the global
            random state is restored after.
        n_samples: Random orders in which positions are added (>= 1); each costs one pass per position.

    Returns:
        One signed score per (target, position); no per-dimension `raw`.
    """
    from captum.attr import ShapleyValueSampling  # captum loads only when this method runs

    _positive(n_samples, "n_samples")
    feats = _features(prob)
    method = ShapleyValueSampling(_forward(prob, feats, grad=False))
    with _seeded(seed):
        a = method.attribute(
            feats.inputs,
            baselines=feats.baselines,
            feature_mask=feats.mask,
            n_samples=n_samples,
            perturbations_per_eval=batch,
        )
    effects = _spread(prob, feats, a.reshape(prob.n_targets, *feats.inputs.shape[1:])[:, :, 0])
    return _position_result(prob, "shapley_sampling", effects, {"seed": seed, "n_samples": n_samples})


@register_method(
    "occlusion",
    "occlusion: the drop in the target when a window of consecutive positions is replaced by the baseline",
    aliases=("sliding_occlusion",),
    options={"window": 3, "stride": 1},
)
def occlusion(prob: _Problem, batch: int, *, window: int, stride: int) -> PrimaryAttribution:
    """captum's Occlusion with a sliding window of positions; each position averages the windows covering it.

    Args:
        prob: The attribution problem `attribute_output` builds (embeddings, baseline, targets, scope).
        batch: Perturbed inputs per forward pass (captum's `perturbations_per_eval`).
        window: Consecutive positions replaced by the baseline together (1 up to the attributable positions).
        stride: Positions the window moves between steps (>= 1).

    Returns:
        One signed score per (target, position); no per-dimension `raw`.
    """
    from captum.attr import Occlusion  # captum loads only when this method runs

    feats = _features(prob)
    n, h = feats.inputs.shape[1:]
    if _positive(window, "window") > n:
        raise InputError(f"window {window} is wider than the {n} positions that can be attributed; use window <= {n}")
    _positive(stride, "stride")
    a = Occlusion(_forward(prob, feats, grad=False)).attribute(
        feats.inputs,
        sliding_window_shapes=(window, h),
        strides=(stride, h),
        baselines=feats.baselines,
        perturbations_per_eval=batch,
    )
    effects = _spread(prob, feats, a.reshape(prob.n_targets, n, h)[:, :, 0])
    return _position_result(prob, "occlusion", effects, {"window": window, "stride": stride})


# ----- DeepLift: refused, with the reason ---------------------------------------------------------------

_PLAIN_LEAVES = ("Linear", "Conv1D", "Embedding", "Dropout", "Identity")


def _no_deeplift(lm: LM) -> str:
    """Why DeepLift is refused (every Transformer: see `_deeplift`)."""
    return "captum's DeepLift has no rule for a Transformer's non-linearities"


def _deeplift(prob: _Problem) -> PrimaryAttribution:
    """Refuse: captum's DeepLift has no rule for any non-linearity of a Transformer, so it is not DeepLift here.

    captum applies DeepLift's rescale rule only to element-wise nn modules (ReLU, ELU, Sigmoid, Tanh,
    Softplus, MaxPool, nn.Softmax). A Transformer's non-linearities are functional softmax attention
    (with query-key and attention-value products), gated or plain GELU/SiLU FFNs and layer/RMS norms:
    captum passes plain gradients through all of them, so on a Llama-family model its "DeepLift" equals
    gradient x (input - baseline) exactly (tests/test_methods_perturbation.py checks this).
    """
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR  # captum loads only when this method runs

    model = prob.lm.model
    leaves = {
        type(m).__name__
        for m in model.modules()
        if not any(True for _ in m.children()) and type(m) not in SUPPORTED_NON_LINEAR
    }
    unsupported = sorted(n for n in leaves if not n.endswith(_PLAIN_LEAVES))
    raise UnsupportedModelError(
        f"DeepLift cannot work on {type(model).__name__}: captum's DeepLift has rescale rules only for "
        "element-wise nn modules (ReLU, ELU, Sigmoid, Tanh, Softplus, MaxPool, nn.Softmax); this model's "
        f"non-linearities ({', '.join(unsupported) or 'none as modules'}, plus the functional attention "
        "softmax and its query-key and attention-value products) have none, so captum would silently return "
        "gradient x (input - baseline), not DeepLift. Use 'grad_x_input' for that, or 'ig' / 'gradient_shap'."
    )


@register_method(
    "deeplift", "refused on Transformers (see the error)", aliases=("deep_lift",), unavailable=_no_deeplift
)
def deeplift(prob: _Problem, batch: int) -> PrimaryAttribution:
    """Refused with the reason; registered so a captum user finds it and learns why.

    Args:
        prob: The attribution problem `attribute_output` builds; only its model is read.
        batch: Unused.

    Raises:
        UnsupportedModelError: always, naming the model's non-linearities DeepLift has no rule for.
    """
    return _deeplift(prob)


@register_method(
    "deeplift_shap",
    "refused on Transformers (see the error)",
    aliases=("deepliftshap", "deep_shap"),
    unavailable=_no_deeplift,
)
def deeplift_shap(prob: _Problem, batch: int) -> PrimaryAttribution:
    """Refused with the reason (DeepLiftShap averages DeepLift over baselines and inherits its rules).

    Args:
        prob: The attribution problem `attribute_output` builds; only its model is read.
        batch: Unused.

    Raises:
        UnsupportedModelError: always, as for `deeplift`.
    """
    return _deeplift(prob)
