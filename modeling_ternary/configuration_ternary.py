"""Configuration of TernaryLM: a LLaMA-style decoder whose projections hold ternary weights {-1, 0, +1}."""

from __future__ import annotations

from transformers import PretrainedConfig

from .packing import PACKING_FORMAT_VERSION, TernaryLayout

# The seven Llama projections that can be ternary; embeddings, norms and the LM head stay full precision.
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
TERNARY_MODULE_NAMES = ATTENTION_PROJECTIONS + MLP_PROJECTIONS

ACTIVATION_QUANT_CHOICES = ("none", "per_token_int8")
SCALE_GRANULARITY_CHOICES = ("per_tensor", "per_channel")
CHECKPOINT_FORMAT_CHOICES = ("latent", "packed")
PACKING_LAYOUT_CHOICES = tuple(layout.value for layout in TernaryLayout)


class TernaryConfig(PretrainedConfig):
    r"""Configuration of a [`TernaryModel`]; the defaults build the 132M-parameter TernaryLM.

    Args:
        vocab_size (`int`, defaults to 30522): vocabulary size (bert-base-uncased WordPiece).
        hidden_size (`int`, defaults to 768): width of the residual stream.
        intermediate_size (`int`, defaults to 2048): width of the SwiGLU MLP.
        num_hidden_layers (`int`, defaults to 12): number of decoder layers.
        num_attention_heads (`int`, defaults to 12): query heads.
        num_key_value_heads (`int`, *optional*): key/value heads (grouped-query attention); defaults to
            `num_attention_heads`.
        head_dim (`int`, *optional*): width of one head; defaults to `hidden_size // num_attention_heads`.
        hidden_act (`str`, defaults to `"silu"`): MLP activation.
        max_position_embeddings (`int`, defaults to 512): longest sequence the model accepts.
        initializer_range (`float`, defaults to 0.02): std of the normal init of every weight, the latent weights of
            ternary layers included. (The paper's notebook used std 1.0 for ternary layers, which makes the latent
            weights 50x larger than the full-precision ones and the optimiser's steps negligible against them; with
            0.02 the dequantized weights `W_t * mean|W|` have the same scale as a full-precision Llama's.)
        rms_norm_eps (`float`, defaults to 1e-6): RMSNorm epsilon.
        rope_parameters (`dict`, *optional*): RoPE settings as in `LlamaConfig`; `rope_theta=10000.0` by default.
        attention_bias (`bool`, defaults to `False`): bias in q/k/v/o projections.
        mlp_bias (`bool`, defaults to `False`): bias in gate/up/down projections.
        lm_head_bias (`bool`, defaults to `False`): bias in the LM head (the paper's notebook has one; without it
            the model maps one to one onto Llama and llama.cpp).
        attention_dropout (`float`, defaults to 0.0): dropout on attention probabilities.
        hidden_dropout (`float`, defaults to 0.0): dropout on each residual branch's output.
        ternary_modules (`list[str]`, defaults to all seven projections): which of
            `q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj` hold ternary weights.
        scale_granularity (`str`, defaults to `"per_tensor"`): `"per_tensor"` (one `mean|W|` a matrix, as in the paper)
            or `"per_channel"` (one `mean|W|` per output row).
        activation_quant (`str`, defaults to `"none"`): `"none"` or `"per_token_int8"` (8-bit absmax per token,
            as in BitNet b1.58).
        quant_eps (`float`, defaults to 1e-5): lower bound of every quantization scale, so that an all-zero matrix
            or token does not divide by zero.
        quant_warmup_steps (`int`, defaults to 0): steps over which quantization is blended in (lambda from 0 to 1)
            when fine-tuning a full-precision model into a ternary one; see `QuantizationWarmupCallback`.
        checkpoint_format (`str`, defaults to `"latent"`): how the ternary weights of the checkpoint this config
            belongs to are stored: `"latent"` (full-precision latent weights, what `save_pretrained` and the Trainer
            write) or `"packed"` (uint8 codes plus a float32 scale, written by `save_packed`; see `packing.py`).
            A model built from a `"packed"` config expects packed tensors and unpacks them in `from_pretrained`.
        packing_layout (`str`, *optional*): `"2bit"` or `"1.6bit"` for a packed checkpoint, else `None`.
        packing_format_version (`int`, *optional*): version of the packed format; a version newer than
            `PACKING_FORMAT_VERSION` is refused.
        use_cache (`bool`, defaults to `True`): return the KV cache from `forward`.
        pad_token_id, bos_token_id, eos_token_id (`int`): bert-base-uncased's `[PAD]`, `[CLS]`, `[SEP]` ids.
        tie_word_embeddings (`bool`, defaults to `False`): share the embedding and LM head matrices.

    Example:
        ```python
        >>> from modeling_ternary import TernaryConfig, TernaryForCausalLM
        >>> config = TernaryConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
        >>> model = TernaryForCausalLM(config)
        ```
    """

    model_type = "ternary"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 30522
    hidden_size: int = 768
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: dict | None = None
    attention_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    ternary_modules: list[str] | tuple[str, ...] | None = None
    scale_granularity: str = "per_tensor"
    activation_quant: str = "none"
    quant_eps: float = 1e-5
    quant_warmup_steps: int = 0
    checkpoint_format: str = "latent"
    packing_layout: str | None = None
    packing_format_version: int | None = None
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 101
    eos_token_id: int | list[int] | None = 102
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.ternary_modules is None:
            self.ternary_modules = list(TERNARY_MODULE_NAMES)
        if isinstance(self.ternary_modules, tuple):
            self.ternary_modules = list(self.ternary_modules)
        self._validate_sizes()
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        _check_positive_int("head_dim", self.head_dim)
        self._validate_quantization()
        self._validate_checkpoint_format()
        self._validate_rates()
        self._validate_token_ids()
        super().__post_init__(**kwargs)

    def _validate_sizes(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "max_position_embeddings"):
            _check_positive_int(name, getattr(self, name))
        if self.head_dim is None and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}), or `head_dim` must be given."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of `num_key_value_heads` "
                f"({self.num_key_value_heads})."
            )
        if not isinstance(self.hidden_act, str):
            raise TypeError(f"`hidden_act` must be a string such as 'silu', got {self.hidden_act!r}.")

    def _validate_quantization(self) -> None:
        if not isinstance(self.ternary_modules, list) or any(not isinstance(m, str) for m in self.ternary_modules):
            raise TypeError(f"`ternary_modules` must be a list of module names, got {self.ternary_modules!r}.")
        unknown = sorted(set(self.ternary_modules) - set(TERNARY_MODULE_NAMES))
        if unknown:
            raise ValueError(
                f"`ternary_modules` contains {unknown}; allowed names are {list(TERNARY_MODULE_NAMES)}."
            )
        if self.scale_granularity not in SCALE_GRANULARITY_CHOICES:
            raise ValueError(f"`scale_granularity` must be one of {SCALE_GRANULARITY_CHOICES}, got {self.scale_granularity!r}.")
        if self.activation_quant not in ACTIVATION_QUANT_CHOICES:
            raise ValueError(
                f"`activation_quant` must be one of {ACTIVATION_QUANT_CHOICES}, got {self.activation_quant!r}."
            )
        _check_positive_float("quant_eps", self.quant_eps)
        if isinstance(self.quant_warmup_steps, bool) or not isinstance(self.quant_warmup_steps, int) \
                or self.quant_warmup_steps < 0:
            raise ValueError(
                f"`quant_warmup_steps` must be an integer >= 0, got {self.quant_warmup_steps!r}."
            )

    def _validate_checkpoint_format(self) -> None:
        if self.checkpoint_format not in CHECKPOINT_FORMAT_CHOICES:
            raise ValueError(
                f"`checkpoint_format` must be one of {CHECKPOINT_FORMAT_CHOICES}, got {self.checkpoint_format!r}."
            )
        if self.checkpoint_format == "latent":
            if self.packing_layout is not None or self.packing_format_version is not None:
                raise ValueError(
                    "`packing_layout` and `packing_format_version` must be None for a latent checkpoint, got "
                    f"{self.packing_layout!r} and {self.packing_format_version!r}."
                )
            return
        if self.packing_layout not in PACKING_LAYOUT_CHOICES:
            raise ValueError(
                f"`packing_layout` must be one of {PACKING_LAYOUT_CHOICES} for a packed checkpoint, "
                f"got {self.packing_layout!r}."
            )
        version = self.packing_format_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"`packing_format_version` must be a positive integer, got {version!r}.")
        if version > PACKING_FORMAT_VERSION:
            raise ValueError(
                f"This checkpoint uses packed format version {version}, newer than the versions this code "
                f"understands (up to {PACKING_FORMAT_VERSION}): upgrade modeling-ternary to load it."
            )

    def _validate_rates(self) -> None:
        for name in ("attention_dropout", "hidden_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be a float in [0, 1), got {value!r}.")
        _check_positive_float("initializer_range", self.initializer_range)
        _check_positive_float("rms_norm_eps", self.rms_norm_eps)

    def _validate_token_ids(self) -> None:
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            ids = value if isinstance(value, list) else [value]
            for token_id in ids:
                if token_id is None:
                    continue
                if isinstance(token_id, bool) or not isinstance(token_id, int) \
                        or not 0 <= token_id < self.vocab_size:
                    raise ValueError(
                        f"`{name}` must be None or an integer in [0, vocab_size={self.vocab_size}), got {value!r}."
                    )

    @property
    def is_ternary(self) -> bool:
        """Whether any projection is ternary (`False` gives the full-precision twin)."""
        return bool(self.ternary_modules)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _check_positive_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")


__all__ = ["TernaryConfig", "TERNARY_MODULE_NAMES"]
