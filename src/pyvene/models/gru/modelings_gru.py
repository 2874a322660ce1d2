"""A small GRU research model (SPEC 8.2): ``GRUConfig`` (model_type "gru"), ``GRUCell``
(x2h / h2h projections; reset / update / new gate activations as modules so each can be
hooked), ``GRUModel`` (stacked cells), ``GRUForClassification`` (pools the last non-pad
position) and ``GRULMHeadModel``.

Layers run one after the other over the whole sequence (mathematically the same as the
time-major loop of the original); ``layer_inputs[L]`` / ``layer_outputs[L]`` are identity
taps on the (B, S, h) sequence entering / leaving layer L, so position ("pos") components
exist. ``cells[L]`` fires once per timestep on (B, h) tensors (the "t" unit)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import (
    BaseModelOutput,
    CausalLMOutput,
    SequenceClassifierOutput,
)

from ..heads import ResearchHead, ResearchModule, classification_loss, embed_inputs


class GRUConfig(PretrainedConfig):
    """Configuration of the GRU research models (model_type "gru"): sizes, layers, labels and
    whether token / position embeddings are part of the model."""

    model_type = "gru"

    def __init__(
        self,
        include_emb: bool = False,
        vocab_size: int = 50257,
        max_position_embeddings: int = 512,
        n_layer: int = 2,
        h_dim: int = 512,
        n_labels: int = 2,
        include_bias: bool = True,
        pdrop: float = 0.3,
        problem_type: str = "single_label_classification",
        initializer_range: float = 0.02,
        **kwargs,
    ) -> None:
        self.include_emb = include_emb
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.n_layer = n_layer
        self.h_dim = h_dim
        self.n_labels = n_labels
        self.include_bias = include_bias
        self.pdrop = pdrop
        self.initializer_range = initializer_range
        super().__init__(problem_type=problem_type, **kwargs)


class GRUCell(nn.Module):
    """``h' = u * h + (1 - u) * n`` with r = sigma(x_r + h_r), u = sigma(x_u + h_u),
    n = tanh(x_n + r * h_n); x2h / h2h outputs are the (r | u | n) thirds."""

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        h, bias = config.h_dim, config.include_bias
        self.x2h = nn.Linear(h, 3 * h, bias=bias)
        self.h2h = nn.Linear(h, 3 * h, bias=bias)
        self.reset_act = nn.Sigmoid()
        self.update_act = nn.Sigmoid()
        self.new_act = nn.Tanh()

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        x_r, x_u, x_n = self.x2h(x).chunk(3, -1)
        h_r, h_u, h_n = self.h2h(hidden).chunk(3, -1)
        reset = self.reset_act(x_r + h_r)
        update = self.update_act(x_u + h_u)
        new = self.new_act(x_n + reset * h_n)
        return update * hidden + (1 - update) * new


class GRUModel(ResearchModule):
    """Stacked GRU cells over a (B, S, h) sequence, with identity taps entering and leaving
    each layer so position components can be hooked."""

    config_class = GRUConfig
    base_model_prefix = ""

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        if config.include_emb:
            self.wte = nn.Embedding(config.vocab_size, config.h_dim)
            self.wpe = nn.Embedding(config.max_position_embeddings, config.h_dim)
        self.dropout = nn.Dropout(config.pdrop)
        self.cells = nn.ModuleList(GRUCell(config) for _ in range(config.n_layer))
        self.layer_inputs = nn.ModuleList(nn.Identity() for _ in range(config.n_layer))
        self.layer_outputs = nn.ModuleList(nn.Identity() for _ in range(config.n_layer))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(
        self,
        input_ids=None,
        position_ids=None,
        inputs_embeds=None,
        hidden_states=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        inputs_embeds = embed_inputs(self, input_ids, position_ids, inputs_embeds, "(B, S, h_dim)")
        seq = self.dropout(inputs_embeds)
        batch, length, width = seq.shape
        all_hidden = [seq] if output_hidden_states else None
        last = []
        for layer, cell in enumerate(self.cells):
            seq = self.layer_inputs[layer](seq)
            h = hidden_states[layer] if hidden_states is not None else seq.new_zeros(batch, width)
            steps = []
            for t in range(length):
                h = cell(seq[:, t], h)
                steps.append(h)
            seq = self.layer_outputs[layer](torch.stack(steps, 1))
            last.append(seq[:, -1])
            if all_hidden is not None:
                all_hidden.append(seq)
        last = torch.stack(last, 0)
        if return_dict:
            return BaseModelOutput(
                last_hidden_state=seq, hidden_states=tuple(all_hidden) if all_hidden else None
            )
        return (seq, last, all_hidden) if all_hidden is not None else (seq, last)


class GRUForClassification(ResearchHead):
    """GRU with a linear classifier on the last non-pad position."""

    config_class = GRUConfig
    base_model_prefix = "gru"

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.gru = GRUModel(config)
        self.score = nn.Linear(config.h_dim, config.n_labels, bias=config.include_bias)

    def forward(
        self,
        input_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        out = self.run_base(input_ids, position_ids, inputs_embeds, output_hidden_states)
        logits = self.score(out[0])
        batch = logits.shape[0]
        pad = getattr(self.config, "pad_token_id", None)
        if input_ids is not None and pad is not None:
            last = (torch.ne(input_ids, pad).sum(-1) - 1).clamp(min=0)
        else:
            last = torch.full((batch,), logits.shape[1] - 1, device=logits.device)
        pooled = logits[torch.arange(batch, device=logits.device), last]
        loss = classification_loss(self.config, pooled, labels)
        if return_dict:
            hidden = out[2] if len(out) > 2 else None
            return SequenceClassifierOutput(
                loss=loss, logits=pooled, hidden_states=tuple(hidden) if hidden else None
            )
        rest = (pooled, *out[1:])
        return (loss, *rest) if loss is not None else rest


class GRULMHeadModel(ResearchHead):
    """GRU with a language-model head (next-token logits at every position)."""

    config_class = GRUConfig
    base_model_prefix = "gru"

    def __init__(self, config: GRUConfig) -> None:
        super().__init__()
        self.config = config
        self.gru = GRUModel(config)
        self.lm_head = nn.Linear(config.h_dim, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        out = self.run_base(input_ids, position_ids, inputs_embeds, output_hidden_states)
        logits = self.lm_head(out[0])
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
            )
        if return_dict:
            return CausalLMOutput(loss=loss, logits=logits)
        return (loss, logits) if loss is not None else (logits,)
