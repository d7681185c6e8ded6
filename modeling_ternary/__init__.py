"""modeling-ternary: ternary-weight ({-1, 0, +1}) language models as a Hugging Face Transformers plugin.

Importing this package registers `TernaryConfig` and the Ternary models with transformers' Auto classes, and marks
them for `save_pretrained` to write `auto_map` and copy the model code (so the Hub can load it with
`trust_remote_code=True` where this package is not installed).
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .configuration_ternary import TERNARY_MODULE_NAMES, TernaryConfig
from .modeling_ternary import (
    TernaryForCausalLM,
    TernaryForSequenceClassification,
    TernaryModel,
    TernaryPreTrainedModel,
)
from .quantization import StraightThroughEstimator, absmean_scale, quantize_activation, quantize_weight
from .ternary_linear import TernaryLinear, replace_linear_with_ternary, set_quant_strength, warmup_strength
from .training import QuantizationWarmupCallback

__version__ = "0.1.0"


def register_auto_classes() -> None:
    """Register the Ternary classes with transformers' Auto classes; safe to call more than once."""
    AutoConfig.register(TernaryConfig.model_type, TernaryConfig, exist_ok=True)
    AutoModel.register(TernaryConfig, TernaryModel, exist_ok=True)
    AutoModelForCausalLM.register(TernaryConfig, TernaryForCausalLM, exist_ok=True)
    AutoModelForSequenceClassification.register(TernaryConfig, TernaryForSequenceClassification, exist_ok=True)
    TernaryConfig.register_for_auto_class()
    TernaryModel.register_for_auto_class("AutoModel")
    TernaryForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    TernaryForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


register_auto_classes()

__all__ = [
    "QuantizationWarmupCallback",
    "StraightThroughEstimator",
    "TERNARY_MODULE_NAMES",
    "TernaryConfig",
    "TernaryForCausalLM",
    "TernaryForSequenceClassification",
    "TernaryLinear",
    "TernaryModel",
    "TernaryPreTrainedModel",
    "absmean_scale",
    "quantize_activation",
    "quantize_weight",
    "register_auto_classes",
    "replace_linear_with_ternary",
    "set_quant_strength",
    "warmup_strength",
]
