"""Steering during generation on the bundled SmolLM2-135M (offline):

1. a steering vector = mean activation on "happy" prompts - on "sad" prompts, read with a
   CollectIntervention, added with a scale at every position of every forward call;
2. an ITI-style shift of chosen attention heads (head_attention_value_output);
3. save the steering intervention and load it back (config.json + safetensors, no pickle).

    .venv/bin/python examples/steering.py
"""

from __future__ import annotations

import tempfile

import torch

import pyvene as pv
from pyvene.zoo import load_smollm2

LAYER = 12


def main() -> None:
    torch.set_grad_enabled(False)
    model, tok = load_smollm2()
    model.generation_config.pad_token_id = tok.eos_token_id
    gen = {"max_new_tokens": 24, "do_sample": False}

    # 1. steering vector from collected activations (whole prompt: no unit_locations)
    collector = pv.IntervenableModel(
        {"layer": LAYER, "component": "block_output", "intervention_type": pv.CollectIntervention},
        model,
    )

    def mean_act(text: str) -> torch.Tensor:
        (_, acts), _ = collector(tok(text, return_tensors="pt"))
        return acts[0].mean(dim=(0, 1))  # (batch, seq, d) -> (d,)

    happy = ["I am very happy and", "What a wonderful, joyful day", "I love this so much"]
    sad = ["I am very sad and", "What a miserable, gloomy day", "I hate this so much"]
    direction = torch.stack([mean_act(h) - mean_act(s) for h, s in zip(happy, sad)]).mean(0)

    steer = pv.IntervenableModel(
        {"layer": LAYER, "component": "block_output", "intervention_type": pv.AdditionIntervention},
        model,
    )
    prompt = tok("Today I feel", return_tensors="pt")
    plain = model.generate(**prompt, **gen)
    print("plain   :", tok.decode(plain[0], skip_special_tokens=True))
    for scale in (4.0, -4.0):
        _, out = steer.generate(
            prompt, source_representations=scale * direction, intervene_on_prompt=True, **gen
        )
        print(f"{scale:+.0f} x dir:", tok.decode(out[0], skip_special_tokens=True))

    # 2. ITI-style: shift heads 1 and 4 of layer 10's attention output, at every step
    heads, head_dim = [1, 4], model.config.hidden_size // model.config.num_attention_heads
    shift = torch.randn(1, len(heads), 1, head_dim, generator=torch.Generator().manual_seed(0))
    iti = pv.IntervenableModel(
        {"layer": 10, "component": "head_attention_value_output", "unit": "h",
         "max_number_of_units": len(heads), "intervention_type": pv.AdditionIntervention},
        model,
    )  # fmt: skip
    _, out = iti.generate(
        prompt,
        unit_locations={"base": [[heads]]},
        source_representations=3.0 * shift,
        timestep_selector=lambda step: True,  # prompt call and every decoding call
        **gen,
    )
    print("ITI     :", tok.decode(out[0], skip_special_tokens=True))

    # 3. save with the vector as a constant source, load, same generation
    saved = pv.IntervenableModel(
        {"layer": LAYER, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": 4.0 * direction},
        model,
    )  # fmt: skip
    _, before = saved.generate(prompt, intervene_on_prompt=True, **gen)
    with tempfile.TemporaryDirectory() as folder:
        saved.save(folder)
        loaded = pv.IntervenableModel.load(folder, model=model)
        _, after = loaded.generate(prompt, intervene_on_prompt=True, **gen)
    print("reloaded:", "identical" if torch.equal(before, after) else "DIFFERENT")


if __name__ == "__main__":
    main()
