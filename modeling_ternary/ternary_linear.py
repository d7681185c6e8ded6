"""`TernaryLinear`, a drop-in replacement for `nn.Linear` with ternary weights, and helpers to convert models and to
warm quantization up."""

from __future__ import annotations

import math

import torch
from torch import nn

from .configuration_ternary import ACTIVATION_QUANT_CHOICES, SCALE_GRANULARITY_CHOICES
from .latent import exact_latent_weight
from .packing import SCALE_DTYPE, as_layout, check_packed, check_scale, packed_shape, unpack_ternary
from .quantization import (
    StraightThroughEstimator,
    absmean_scale,
    quantize_activation,
    quantize_weight,
    ternary_codes,
)


class TernaryLinear(nn.Linear):
    """`nn.Linear` whose weight is used ternarized in the forward pass, trained by the straight-through estimator.

    `weight` stays the latent full-precision parameter (so optimizers, checkpoints and `load_state_dict` see an
    ordinary `nn.Linear`); the bias, if any, stays full precision.

    Args:
        in_features, out_features, bias, device, dtype: as in `nn.Linear`.
        scale_granularity: `"per_tensor"` or `"per_channel"` absmean scale.
        activation_quant: `"none"` or `"per_token_int8"`.
        quant_eps: lower bound of the quantization scales.

    Attributes:
        quant_strength (`float`): lambda in [0, 1]; the forward pass uses `(1 - lambda) * W + lambda * Q(W)` (and
            the same for activations). 1.0 (the default) is fully ternary; smaller values are for warm-up only.

    Example:
        >>> layer = TernaryLinear(64, 32, bias=False)
        >>> layer(torch.randn(2, 64)).shape
        torch.Size([2, 32])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        scale_granularity: str = "per_tensor",
        activation_quant: str = "none",
        quant_eps: float = 1e-5,
    ) -> None:
        if scale_granularity not in SCALE_GRANULARITY_CHOICES:
            raise ValueError(
                f"`scale_granularity` must be one of {SCALE_GRANULARITY_CHOICES}, got {scale_granularity!r}."
            )
        if activation_quant not in ACTIVATION_QUANT_CHOICES:
            raise ValueError(
                f"`activation_quant` must be one of {ACTIVATION_QUANT_CHOICES}, got {activation_quant!r}."
            )
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.scale_granularity = scale_granularity
        self.activation_quant = activation_quant
        self.quant_eps = quant_eps
        self.quant_strength = 1.0

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses, `W_t * g` blended by `quant_strength`, differentiable by STE."""
        return self._quantized_weight(reuse_workspace=False)

    def _quantized_weight(self, reuse_workspace: bool) -> torch.Tensor:
        # The forward pass writes into a reusable workspace (see `_reusable_workspace`); the public accessor returns a
        # new tensor, so that no caller ever holds a tensor a later forward pass overwrites.
        quantize = self._quantize_weight_into_workspace if reuse_workspace else self._quantize_weight
        quantized = StraightThroughEstimator.apply(self.weight, quantize)
        return _blend(self.weight, quantized, self.quant_strength)

    def ternary_codes(self) -> torch.Tensor:
        """The int8 codes in {-1, 0, +1} of the current latent weight, shape (out, in)."""
        with torch.no_grad():
            scale = absmean_scale(self.weight, self.scale_granularity, self.quant_eps)
            return ternary_codes(self.weight, scale).to(torch.int8)

    def current_scale(self) -> torch.Tensor:
        """The absmean scale g of the current latent weight: shape () per tensor, (out, 1) per channel."""
        with torch.no_grad():
            return absmean_scale(self.weight, self.scale_granularity, self.quant_eps)

    @property
    def is_packed(self) -> bool:
        """Whether the layer holds packed buffers (`weight_packed`, `weight_scale`) instead of a latent weight."""
        return self.weight is None

    def use_packed_storage(self, layout: str) -> None:
        """Swap the latent weight for empty packed buffers, to be filled from a packed checkpoint.

        Registers `weight_packed` (uint8, `packed_shape((out, in), layout)`) and `weight_scale` (float32, shape
        () per tensor or (out, 1) per channel); `weight` becomes None until `unpack_()`.

        Args:
            layout: `"2bit"` or `"1.6bit"` (see `packing.py`).
        """
        layout = as_layout(layout)
        self.weight = None
        self.packing_layout = layout.value
        shape = (self.out_features, self.in_features)
        scale_shape = () if self.scale_granularity == "per_tensor" else (self.out_features, 1)
        self.register_buffer("weight_packed", torch.zeros(packed_shape(shape, layout), dtype=torch.uint8))
        self.register_buffer("weight_scale", torch.ones(scale_shape, dtype=SCALE_DTYPE))

    def checked_packed_codes(self, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
        """The int8 codes (out, in) and scale of the packed buffers, after checking both against the format.

        Args:
            name: the layer's name in the model, for error messages (e.g. `model.layers.0.mlp.up_proj`).

        Returns:
            `(codes, weight_scale)`.

        Raises:
            ValueError: if the packed codes or the scale are invalid (a code 3, a byte > 242, a wrong shape or
                dtype, a non-positive scale, a scale shape that does not fit `scale_granularity`), naming the tensor.
        """
        self._check_packed_scale(name)
        shape = (self.out_features, self.in_features)
        codes = unpack_ternary(self.weight_packed, shape, self.packing_layout, name=f"{name}.weight_packed")
        return codes, self.weight_scale

    def checked_packed_buffers(self, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor]:
        """The packed buffers themselves (`weight_packed`, `weight_scale`), after the checks of
        `checked_packed_codes`, without unpacking (inference uses the "2bit" bytes as they are).

        Args:
            name: the layer's name in the model, for error messages.

        Returns:
            `(weight_packed, weight_scale)`.

        Raises:
            ValueError: as `checked_packed_codes`.
        """
        self._check_packed_scale(name)
        check_packed(self.weight_packed, (self.out_features, self.in_features), self.packing_layout,
                     name=f"{name}.weight_packed")
        return self.weight_packed, self.weight_scale

    def _check_packed_scale(self, name: str) -> None:
        check_scale(self.weight_scale, self.out_features, name=f"{name}.weight_scale")
        expected_scale_shape = () if self.scale_granularity == "per_tensor" else (self.out_features, 1)
        if tuple(self.weight_scale.shape) != expected_scale_shape:
            raise ValueError(
                f"{name}.weight_scale has shape {tuple(self.weight_scale.shape)}, but the layer's "
                f"scale_granularity={self.scale_granularity!r} needs {expected_scale_shape}."
            )

    def unpack_(self, name: str = "weight", dtype: torch.dtype = torch.float32) -> None:
        """Replace the packed buffers by a latent weight that quantizes back to exactly `codes * scale`.

        Args:
            name: the layer's name in the model, for error messages (e.g. `model.layers.0.mlp.up_proj`).
            dtype: floating dtype of the latent weight.

        Raises:
            ValueError: as `checked_packed_codes`.
        """
        codes, _ = self.checked_packed_codes(name)
        latent = exact_latent_weight(codes, self.weight_scale, self.scale_granularity, self.quant_eps, dtype)
        del self.weight_packed, self.weight_scale, self.packing_layout
        self.weight = nn.Parameter(latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError(
                "This TernaryLinear holds packed weights that were not unpacked: load packed checkpoints with "
                "`from_pretrained` (which unpacks them) or call `model.unpack_packed_weights_()`."
            )
        if self.activation_quant == "per_token_int8":
            quantized_x = StraightThroughEstimator.apply(x, self._quantize_activation_into_workspace)
            x = _blend(x, quantized_x, self.quant_strength)
        return nn.functional.linear(x, self._quantized_weight(reuse_workspace=True), self.bias)

    def _quantize_weight(self, weight: torch.Tensor) -> torch.Tensor:
        return quantize_weight(weight, self.scale_granularity, self.quant_eps)

    def _quantize_weight_into_workspace(self, weight: torch.Tensor) -> torch.Tensor:
        out = self._reusable_workspace("_quantized_workspace", weight)
        return quantize_weight(weight, self.scale_granularity, self.quant_eps, out=out)

    def _quantize_activation_into_workspace(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_activation(x, self.quant_eps, out=self._reusable_workspace("_activation_workspace", x))

    def _reusable_workspace(self, slot: str, like: torch.Tensor) -> torch.Tensor | None:
        """The tensor a quantized weight or activation is written into: last step's, when nothing holds it any more.

        A fresh tensor each forward pass costs page faults (~70 ms a step for the 132M model's weights here, and more
        when the host is busy); reusing one costs nothing, at the price of keeping it between steps (like PyTorch's
        CUDA caching allocator). A workspace only ever goes from here into `F.linear` (never to a caller), so its
        holders can only be autograd's: it is reused when nothing but this layer holds it (no tensor saved for a
        backward pass still to come: `_use_count() == 1`, and no view of its storage), so two forward passes before
        one backward get two workspaces. As a safety net its version counter is bumped, so a holder these checks
        missed makes autograd raise instead of computing with new values. CPU float32 only (the kernel path).
        """
        if not (like.device.type == "cpu" and like.dtype == torch.float32):
            return None
        workspace = self.__dict__.get(slot)
        if workspace is not None and workspace.shape == like.shape and _is_unshared(workspace):
            torch.autograd.graph.increment_version(workspace)
            return workspace
        workspace = torch.empty_like(like, memory_format=torch.contiguous_format)
        self.__dict__[slot] = workspace
        return workspace

    def __getstate__(self):
        state = super().__getstate__()
        for slot in ("_quantized_workspace", "_activation_workspace"):  # caches: copies and pickles do not need them
            state.pop(slot, None)
        return state

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, scale_granularity={self.scale_granularity}, activation_quant={self.activation_quant}"
        )


def _is_unshared(tensor: torch.Tensor) -> bool:
    # References to the TensorImpl: its Python object's only (autograd's saved tensors would add theirs); to the
    # storage: this tensor's and the temporary storage object's (a view would add its own). Both counters are
    # private PyTorch API: where one is missing, nothing is reused (a fresh tensor each pass, as before).
    try:
        return tensor._use_count() == 1 and torch._C._storage_Use_Count(tensor.untyped_storage()._cdata) == 2
    except AttributeError:
        return False


def _blend(full_precision: torch.Tensor, quantized: torch.Tensor, strength: float) -> torch.Tensor:
    # strength == 1 must return the quantized tensor bit for bit, not 0 * W + 1 * Q.
    if strength >= 1.0:
        return quantized
    return (1.0 - strength) * full_precision + strength * quantized


def replace_linear_with_ternary(
    module: nn.Module,
    module_names: list[str] | tuple[str, ...] | None = None,
    *,
    scale_granularity: str = "per_tensor",
    activation_quant: str = "none",
    quant_eps: float = 1e-5,
) -> nn.Module:
    """Replace, in place, the `nn.Linear` children of `module` by `TernaryLinear`s holding the same weights.

    Works on any module, e.g. a transformers `LlamaForCausalLM`, to convert a full-precision model for ternary
    fine-tuning (combine with `quant_strength` warm-up).

    Args:
        module: the model to convert.
        module_names: only linears whose own attribute name is in this list are replaced (e.g. `["q_proj",
            "down_proj"]`); `None` replaces every `nn.Linear` except ones named `lm_head` or `score`.
        scale_granularity, activation_quant, quant_eps: passed to each `TernaryLinear`.

    Returns:
        `module` itself, for chaining.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> llama = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        ...                                      num_attention_heads=4, vocab_size=99))
        >>> replace_linear_with_ternary(llama).model.layers[0].mlp.up_proj.__class__.__name__
        'TernaryLinear'
    """
    if module_names is not None and (
        isinstance(module_names, str) or any(not isinstance(name, str) for name in module_names)
    ):
        raise TypeError(f"`module_names` must be a list of attribute names, got {module_names!r}.")
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not _should_replace(name, child, module_names):
                continue
            setattr(parent, name, _ternary_copy_of(child, scale_granularity, activation_quant, quant_eps))
    return module


def _should_replace(name: str, child: nn.Module, module_names) -> bool:
    if type(child) is not nn.Linear:  # leaves TernaryLinear and other subclasses alone
        return False
    if module_names is None:
        return name not in ("lm_head", "score")
    return name in module_names


def _ternary_copy_of(
    linear: nn.Linear, scale_granularity: str, activation_quant: str, quant_eps: float
) -> TernaryLinear:
    ternary = TernaryLinear(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
        scale_granularity=scale_granularity,
        activation_quant=activation_quant,
        quant_eps=quant_eps,
    )
    with torch.no_grad():
        ternary.weight.copy_(linear.weight)
        if linear.bias is not None:
            ternary.bias.copy_(linear.bias)
    return ternary


def set_quant_strength(module: nn.Module, strength: float) -> None:
    """Set lambda (0 = full precision, 1 = fully ternary) on every `TernaryLinear` inside `module`.

    Args:
        module: a model holding `TernaryLinear`s.
        strength: lambda in [0, 1].
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0 \
            or math.isnan(strength):
        raise ValueError(f"`strength` must be a number in [0, 1], got {strength!r}.")
    for submodule in module.modules():
        if isinstance(submodule, TernaryLinear):
            submodule.quant_strength = float(strength)


def warmup_strength(step: int, warmup_steps: int) -> float:
    """Linear warm-up of lambda: `min(1, step / warmup_steps)`, and 1.0 when `warmup_steps` is 0."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, max(0, step) / warmup_steps)


__all__ = [
    "TernaryLinear",
    "replace_linear_with_ternary",
    "set_quant_strength",
    "warmup_strength",
]
