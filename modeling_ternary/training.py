"""Trainer integration: the quantization warm-up callback (lambda from 0 to 1 over `quant_warmup_steps`)."""

from __future__ import annotations

from transformers import TrainerCallback

from .ternary_linear import set_quant_strength, warmup_strength


class QuantizationWarmupCallback(TrainerCallback):
    """Blend ternary quantization in linearly over the first `warmup_steps` optimizer steps.

    Before each step it sets lambda = `min(1, global_step / warmup_steps)` on every `TernaryLinear`, so the
    forward pass uses `(1 - lambda) * W + lambda * Q(W)`. The value depends on the global step only, so a run
    resumed from a checkpoint continues with the right lambda. At the end of training lambda is set to 1.

    Args:
        warmup_steps: number of steps to reach full quantization; `None` reads `model.config.quant_warmup_steps`.

    Example:
        >>> trainer = Trainer(model=model, args=args, train_dataset=data,
        ...                   callbacks=[QuantizationWarmupCallback(warmup_steps=500)])  # doctest: +SKIP
    """

    def __init__(self, warmup_steps: int | None = None):
        if warmup_steps is not None and (isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int)
                                         or warmup_steps < 0):
            raise ValueError(f"`warmup_steps` must be None or an integer >= 0, got {warmup_steps!r}.")
        self.warmup_steps = warmup_steps

    def _steps(self, model) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return getattr(model.config, "quant_warmup_steps", 0)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        set_quant_strength(model, warmup_strength(state.global_step, self._steps(model)))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        set_quant_strength(model, 1.0)


__all__ = ["QuantizationWarmupCallback"]
