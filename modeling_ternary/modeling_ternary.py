"""TernaryLM: a LLaMA-style decoder whose attention and MLP projections hold ternary weights {-1, 0, +1}.

Module and state-dict names are Llama's (`model.layers.N.self_attn.q_proj.weight`, ...), so a `LlamaForCausalLM`
checkpoint loads key for key and a ternary checkpoint dequantizes into one. Diff with Llama: the projections listed
in `config.ternary_modules` are `TernaryLinear`s; optional residual dropout; optional LM-head bias; inputs are
validated (token ids, positions) instead of failing deep inside an embedding or silently extrapolating RoPE.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .checkpoint import load_pretrained, save_packed, unpack_packed_weights
from .configuration_ternary import TernaryConfig
from .inference import INFERENCE_ERROR, convert_to_inference, memory_report, project_qkv_with_rope, refuse_backward
from .ternary_linear import TernaryLinear


def make_projection(config: TernaryConfig, name: str, in_features: int, out_features: int, bias: bool) -> nn.Linear:
    """A `TernaryLinear` if `name` is in `config.ternary_modules`, else a full-precision `nn.Linear`.

    For a packed checkpoint's config, the `TernaryLinear` holds empty packed buffers that loading fills.
    """
    if name not in config.ternary_modules:
        return nn.Linear(in_features, out_features, bias=bias)
    layer = TernaryLinear(
        in_features,
        out_features,
        bias=bias,
        scale_granularity=config.scale_granularity,
        activation_quant=config.activation_quant,
        quant_eps=config.quant_eps,
    )
    if config.checkpoint_format == "packed":
        layer.use_packed_storage(config.packing_layout)
    return layer


class TernaryMLP(nn.Module):
    """SwiGLU MLP: `down(act(gate(x)) * up(x))`."""

    def __init__(self, config: TernaryConfig):
        super().__init__()
        hidden, inner, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = make_projection(config, "gate_proj", hidden, inner, bias)
        self.up_proj = make_projection(config, "up_proj", hidden, inner, bias)
        self.down_proj = make_projection(config, "down_proj", inner, hidden, bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "gate_up_proj"):  # inference mode: gate and up stacked in one packed matrix
            return self.down_proj(self.gate_up_proj.gated(x, self.act_fn))
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class TernaryAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with RoPE, through transformers' attention backends."""

    def __init__(self, config: TernaryConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        q_width = config.num_attention_heads * self.head_dim
        kv_width = config.num_key_value_heads * self.head_dim
        bias = config.attention_bias
        self.q_proj = make_projection(config, "q_proj", config.hidden_size, q_width, bias)
        self.k_proj = make_projection(config, "k_proj", config.hidden_size, kv_width, bias)
        self.v_proj = make_projection(config, "v_proj", config.hidden_size, kv_width, bias)
        self.o_proj = make_projection(config, "o_proj", q_width, config.hidden_size, bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]  # (B, T)
        hidden_shape = (*input_shape, -1, self.head_dim)
        if hasattr(self, "qkv_proj"):  # inference mode: q, k and v in one packed matrix, RoPE by a kernel
            rotated = project_qkv_with_rope(self.qkv_proj, hidden_states, position_embeddings, self.head_dim)
            query, key, value = (t.view(hidden_shape).transpose(1, 2) for t in rotated)
        else:
            query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, heads, T, head_dim)
            key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, kv_heads, T, head_dim)
            value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
            cos, sin = position_embeddings
            query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)  # (B, kv_heads, past + T, head_dim)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()  # (B, T, heads * head_dim)
        return self.o_proj(attn_output), attn_weights


class TernaryDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm decoder block: `x + drop(attn(norm(x)))`, then `x + drop(mlp(norm(x)))`."""

    def __init__(self, config: TernaryConfig, layer_idx: int):
        super().__init__()
        self.self_attn = TernaryAttention(config, layer_idx)
        self.mlp = TernaryMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)  # diff with Llama: residual dropout (0 by default)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_output, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + self._residual_dropout(attn_output)
        hidden_states = hidden_states + self._residual_dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return hidden_states, attn_weights

    def _residual_dropout(self, x: torch.Tensor) -> torch.Tensor:
        # Skipping the module call when it is the identity saves ~3 us twice a layer, which decoding notices.
        return self.dropout(x) if self.training and self.dropout.p > 0 else x


class TernaryPreTrainedModel(PreTrainedModel):
    """Weight initialisation, loading and saving shared by the Ternary models.

    Every weight, the latent weights of ternary layers included, starts from `N(0, initializer_range)` (transformers'
    default `_init_weights`); norms start at 1, biases at 0.
    """

    config_class = TernaryConfig
    config: TernaryConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TernaryDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    is_inference = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, inference: bool = False, **kwargs):
        """`PreTrainedModel.from_pretrained` for latent and packed checkpoints alike.

        A packed checkpoint (`config.checkpoint_format == "packed"`) is checked tensor by tensor (codes, scales,
        shapes, missing tensors: each problem is a `ValueError` naming the tensor) and unpacked into latent weights
        that reproduce the packed model exactly, so the result can be fine-tuned. Pass `dtype=torch.float32` to
        compute in float32 (packed checkpoints store their float tensors in bfloat16 by default, and the default
        `dtype="auto"` keeps that).

        With `inference=True` the model is converted to inference mode instead (see `to_inference`); a packed
        checkpoint then goes straight from its packed tensors to the packed in-memory layout, no latent weights.
        """
        return load_pretrained(
            super().from_pretrained, pretrained_model_name_or_path, *model_args, inference=inference, **kwargs
        )

    def to_inference(self):
        """Convert this model, in place, to the packed CPU inference mode and return it.

        Ternary matrices are held as 2-bit codes plus per-row scales and multiplied by compiled CPU kernels (8-bit
        activations when the model was trained with them, ~15-bit otherwise); embeddings and head in bfloat16; no
        latent weights. The model can then only be used for inference: `.train()`, backward passes and
        `save_pretrained` raise. See `inference.py`.

        Example:
            >>> model = AutoModelForCausalLM.from_pretrained("ternary-132m-packed", inference=True)  # doctest: +SKIP
            >>> model.generate(**tokenizer("Once upon a time", return_tensors="pt"))  # doctest: +SKIP
        """
        convert_to_inference(self)
        return self

    def inference_memory_report(self, cache_tokens: int = 0, batch_size: int = 1) -> dict[str, int]:
        """Bytes of each part of an inference-mode model (ternary layers, embeddings, head, norms, KV cache)."""
        return memory_report(self, cache_tokens=cache_tokens, batch_size=batch_size)

    def train(self, mode: bool = True):
        if mode and self.is_inference:
            raise RuntimeError(INFERENCE_ERROR)
        return super().train(mode)

    def save_pretrained(self, *args, **kwargs):
        if self.is_inference:
            raise RuntimeError(INFERENCE_ERROR)
        return super().save_pretrained(*args, **kwargs)

    def save_packed(self, save_directory, layout: str = "2bit", float_dtype=torch.bfloat16, **kwargs):
        """Write this model as a packed checkpoint; see `checkpoint.save_packed`.

        Args:
            save_directory: output directory.
            layout: `"2bit"` or `"1.6bit"`.
            float_dtype: dtype of the non-ternary tensors (bfloat16 by default).
            **kwargs: passed to `save_pretrained`.

        Returns:
            The directory, as a `Path`.

        Example:
            >>> model.save_packed("my-model-packed")  # doctest: +SKIP
        """
        return save_packed(self, save_directory, layout=layout, float_dtype=float_dtype, **kwargs)

    def unpack_packed_weights_(self) -> None:
        """Unpack, in place, ternary layers that still hold packed buffers (after `load_state_dict` of a packed
        state dict); `from_pretrained` does this itself."""
        unpack_packed_weights(self)


class TernaryModel(TernaryPreTrainedModel):
    """The bare decoder: embeddings, `num_hidden_layers` blocks and the final norm; returns hidden states."""

    def __init__(self, config: TernaryConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [TernaryDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Run the decoder.

        Args:
            input_ids: token ids of shape (batch, seq), each in `[0, vocab_size)`; or give `inputs_embeds`.
            attention_mask: (batch, past + seq), 1 for tokens to attend to and 0 for padding.
            position_ids: (batch, seq); by default `past + arange(seq)`. Must stay below `max_position_embeddings`.
            cache: a transformers `Cache` holding earlier keys/values (e.g. `DynamicCache`).
            inputs_embeds: (batch, seq, hidden) instead of `input_ids`.
            use_cache: create and return a cache (defaults to `config.use_cache`).
            output_hidden_states, output_attentions: also return every layer's input / attention weights.

        Returns:
            `BaseModelOutputWithPast` with `last_hidden_state` of shape (batch, seq, hidden).
        """
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None \
            else output_hidden_states
        inputs_embeds = self._embed(input_ids, inputs_embeds)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)  # (1, T)
        self._check_positions(position_ids)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for decoder_layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, attn_weights = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
            if output_attentions:
                all_attentions += (attn_weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Give exactly one of `input_ids` or `inputs_embeds`, not both and not neither.")
        if inputs_embeds is not None:
            return inputs_embeds
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise TypeError(f"`input_ids` must be an integer tensor, got dtype {input_ids.dtype}.")
        if input_ids.numel() > 0:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                bad = low if low < 0 else high
                raise ValueError(
                    f"`input_ids` contains token id {bad}, outside the vocabulary [0, {self.config.vocab_size}). "
                    "Check that the tokenizer matches the model."
                )
        return self.embed_tokens(input_ids)

    def _check_positions(self, position_ids: torch.Tensor) -> None:
        if position_ids.numel() == 0:
            return
        last = int(position_ids.max())
        if last >= self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence reaches position {last}, past `max_position_embeddings` "
                f"({self.config.max_position_embeddings}): shorten the input (prompt plus generated tokens)."
            )


class TernaryForCausalLM(TernaryPreTrainedModel, GenerationMixin):
    """TernaryLM with a language-modelling head: next-token logits, shifted cross-entropy loss, `generate`.

    Example:
        ```python
        >>> import torch
        >>> from modeling_ternary import TernaryConfig, TernaryForCausalLM
        >>> config = TernaryConfig(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                        num_attention_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)
        >>> model = TernaryForCausalLM(config)
        >>> out = model(torch.tensor([[5, 6, 7]]), labels=torch.tensor([[5, 6, 7]]))
        >>> out.logits.shape
        torch.Size([1, 3, 99])
        ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TernaryConfig):
        super().__init__(config)
        self.model = TernaryModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=config.lm_head_bias)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Next-token logits, and the loss when `labels` are given.

        Args:
            input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache: as in `TernaryModel.forward`.
            labels: (batch, seq) token ids; the loss is the mean cross-entropy of predicting `labels[:, 1:]` from
                positions `:-1` (the shift happens inside), ignoring `-100`.
            logits_to_keep: if an int `k > 0`, compute logits for the last `k` positions only (generation).

        Returns:
            `CausalLMOutputWithPast` with `logits` of shape (batch, seq or k, vocab_size).
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden_states = hidden_states[:, -logits_to_keep:, :]  # -0: keeps all
        else:
            hidden_states = hidden_states[:, logits_to_keep, :]
        logits = self.lm_head(hidden_states)
        if self.is_inference:
            logits = refuse_backward(logits)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class TernaryForSequenceClassification(TernaryPreTrainedModel):
    """TernaryLM with a linear head on the hidden state of the last non-padding token.

    `config.problem_type` chooses the loss as in transformers: `"regression"` (MSE, `num_labels` outputs),
    `"single_label_classification"` (cross-entropy) or `"multi_label_classification"` (BCE with logits); when unset
    it is inferred from `num_labels` and the labels' dtype.
    """

    def __init__(self, config: TernaryConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = TernaryModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Classify (or regress) each sequence from its last non-padding token.

        Args:
            input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache: as in `TernaryModel.forward`.
                The last real token is found from `attention_mask` when given, else from `input_ids != pad_token_id`.
            labels: (batch,) class ids, (batch,) or (batch, num_labels) floats for regression, or (batch,
                num_labels) multi-hot floats.

        Returns:
            `SequenceClassifierOutputWithPast` with `logits` of shape (batch, num_labels).
        """
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (B, T, num_labels)
        if self.is_inference:
            logits = refuse_backward(logits)
        last_token = self._last_token_index(input_ids, attention_mask, logits)
        pooled_logits = logits[torch.arange(logits.shape[0], device=logits.device), last_token]  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled_logits, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled_logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _last_token_index(self, input_ids, attention_mask, logits: torch.Tensor) -> torch.Tensor | int:
        batch_size, seq_len = logits.shape[:2]
        pad_token_id = self.config.pad_token_id
        if pad_token_id is None and batch_size != 1:
            raise ValueError(
                f"Cannot pool a batch of {batch_size} sequences without `config.pad_token_id`: set it to the "
                "tokenizer's padding id, or pass one sequence at a time."
            )
        if attention_mask is not None and attention_mask.ndim == 2:
            real_tokens = attention_mask[:, -seq_len:].to(logits.device, torch.int32)
        elif pad_token_id is not None and input_ids is not None:
            real_tokens = (input_ids != pad_token_id).to(logits.device, torch.int32)
        else:
            return -1
        # The rightmost real token, for left and right padding alike.
        positions = torch.arange(seq_len, device=logits.device, dtype=torch.int32)
        return (positions * real_tokens).argmax(-1)


__all__ = [
    "TernaryPreTrainedModel",
    "TernaryModel",
    "TernaryForCausalLM",
    "TernaryForSequenceClassification",
]
