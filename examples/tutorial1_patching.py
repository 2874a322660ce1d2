"""Seed Tutorial 1 on the bundled SmolLM2-135M: patch the Eiffel Tower run's last-position
block_output into the Colosseum run, one layer at a time, and print P(Paris) / P(Rome).

Run: ``make demo`` (or ``.venv/bin/python examples/tutorial1_patching.py``).
"""

from __future__ import annotations

import torch

import pyvene as pv


def main() -> None:
    model, tokenizer = pv.load_smollm2()
    base = tokenizer("The Colosseum is in the city of", return_tensors="pt")
    source = tokenizer("The Eiffel Tower is in the city of", return_tensors="pt")
    paris = tokenizer.encode(" Paris")[0]
    rome = tokenizer.encode(" Rome")[0]
    src_last = source["input_ids"].shape[1] - 1
    base_last = base["input_ids"].shape[1] - 1

    with torch.no_grad():
        clean = torch.softmax(model(**base).logits[0, -1], -1)
    print(f"unpatched Colosseum run: P(Paris)={clean[paris]:.4f}  P(Rome)={clean[rome]:.4f}\n")
    print(f"{'layer':>5}  {'P(Paris)':>9}  {'P(Rome)':>9}")
    for layer in range(model.config.num_hidden_layers):
        config = pv.IntervenableConfig(
            representations=[
                pv.RepresentationConfig(
                    layer=layer, component="block_output", intervention_type=pv.VanillaIntervention
                )
            ]
        )
        intervenable = pv.IntervenableModel(config, model)
        with torch.no_grad():
            _, patched = intervenable(
                base=base,
                sources=[source],
                unit_locations={"sources->base": ([[[src_last]]], [[[base_last]]])},
            )
        probs = torch.softmax(patched.logits[0, -1], dim=-1)
        bar = "#" * int(40 * probs[paris])
        print(f"{layer:>5}  {probs[paris]:9.4f}  {probs[rome]:9.4f}  {bar}")


if __name__ == "__main__":
    main()
