"""A small MLP research model (SPEC 8.2): ``MLPConfig`` (model_type "mlp"), ``MLPModel``
(a stack of ``MLPBlock`` = dropout(act(ff1(x))) under ``h``) and ``MLPForClassification``
(``mlp`` + ``score``). Inputs are ``inputs_embeds`` of shape (B, 1, h_dim) unless
``include_emb`` (then ``input_ids``)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from ..heads import ResearchHead, ResearchModule, classification_loss, embed_inputs


class MLPConfig(PretrainedConfig):
    """Configuration of the MLP research models (model_type "mlp"): sizes, layers, classes,
    activation and whether embeddings are part of the model."""

    model_type = "mlp"

    def __init__(
        self,
        include_emb: bool = False,
        vocab_size: int = 50257,
        max_position_embeddings: int = 512,
        n_layer: int = 2,
        h_dim: int = 512,
        num_classes: int = 2,
        activation_function: str = "gelu",
        pdrop: float = 0.3,
        problem_type: str = "single_label_classification",
        include_bias: bool = True,
        squeeze_output: bool = True,
        **kwargs,
    ) -> None:
        self.include_emb = include_emb
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.n_layer = n_layer
        self.h_dim = h_dim
        self.num_classes = num_classes
        self.activation_function = activation_function
        self.pdrop = pdrop
        self.include_bias = include_bias
        self.squeeze_output = squeeze_output
        super().__init__(problem_type=problem_type, **kwargs)


def _return_dict(config, return_dict) -> bool:
    return bool(return_dict) if return_dict is not None else False


class MLPBlock(nn.Module):
    """One MLP layer: linear, activation, dropout (one ``h[L]`` block of :class:`MLPModel`)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.ff1 = nn.Linear(config.h_dim, config.h_dim, bias=config.include_bias)
        self.act = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.pdrop)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.ff1(hidden_states)))


class MLPModel(ResearchModule):
    """Stacked :class:`MLPBlock` layers over (B, S, h) inputs or embedded token ids."""

    config_class = MLPConfig
    base_model_prefix = ""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        if config.include_emb:
            self.wte = nn.Embedding(config.vocab_size, config.h_dim)
            self.wpe = nn.Embedding(config.max_position_embeddings, config.h_dim)
        self.dropout = nn.Dropout(config.pdrop)
        self.h = nn.ModuleList(MLPBlock(config) for _ in range(config.n_layer))

    def forward(
        self,
        input_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        inputs_embeds = embed_inputs(self, input_ids, position_ids, inputs_embeds, "(B, 1, h_dim)")
        hidden = self.dropout(inputs_embeds)
        all_hidden = [hidden] if output_hidden_states else None
        for block in self.h:
            hidden = block(hidden)
            if all_hidden is not None:
                all_hidden.append(hidden)
        if _return_dict(self.config, return_dict):
            return BaseModelOutput(
                last_hidden_state=hidden,
                hidden_states=tuple(all_hidden) if all_hidden else None,
            )
        return (hidden, all_hidden) if all_hidden is not None else (hidden,)


class MLPForClassification(ResearchHead):
    """MLP with a linear classifier head (the original's ``create_mlp_classifier`` model)."""

    config_class = MLPConfig
    base_model_prefix = "mlp"

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.mlp = MLPModel(config)
        self.score = nn.Linear(config.h_dim, config.num_classes, bias=config.include_bias)

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
        out = self.run_base(
            input_ids, position_ids, inputs_embeds, output_hidden_states, return_dict=False
        )
        logits = self.score(out[0])
        if self.config.squeeze_output:
            logits = logits.squeeze(1)
        loss = classification_loss(self.config, logits, labels)
        if _return_dict(self.config, return_dict):
            hidden = out[1] if len(out) > 1 else None
            return SequenceClassifierOutput(
                loss=loss, logits=logits, hidden_states=tuple(hidden) if hidden else None
            )
        rest = (logits, *out[1:])
        return (loss, *rest) if loss is not None else rest
