"""The seeds' code runs against this library: every python block of the four public documents
(/work/shared/seeds/*.txt: the SKILL page in two translations, api.md, tutorials.md).

Each block is copied into ``tests/seeds/<doc>_<n>.py`` (CI runs on a clean clone without the
documents) with a header naming its source; only the lines marked ``# changed:`` differ:

* model loading: ``"gpt2"`` & co. become ``MODEL_DIR``, the bundled SmolLM2 folder
  (``smollm2_path()``), or a tiny seeded GPT-2 folder for blocks that read GPT-2's
  ``model.config.n_layer``. That GPT-2 uses the SmolLM2 tokenizer (``vocab_size`` set to its
  length): no GPT-2 tokenizer is available offline.
* ``"..."`` placeholders in template blocks are filled with a layer and component.
* where SPEC Part A says the seed is wrong, the SPEC's form (the ``(_, collected), _`` Collect
  idiom, ``generate`` returning ``(original, ids)``, hub sharing with ``push_to_hub``); blocks
  that run as written but do nothing useful (Tutorial 3's self-source, Workflow 3's full-rank
  RotatedSpace) run as written *and* in a ``*_corrected.py`` form.
* training loops are shortened by their step count only.

Names a block uses without defining (``base_inputs``, ``dataloader``...) are given by the test.
Each block runs statement by statement in a fresh namespace; the test keeps the values of
top-level expressions and every top-level assignment, then checks them against an independent
computation (plain forward hooks on the Hugging Face model, ``output_hidden_states``, HF
``generate``). When the seed documents are present, ``test_copies_match_the_seed_documents``
checks that the copies still match them.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

import pyvene as pv
from pyvene.zoo import create_gpt2_lm, smollm2_path, tiny_gpt2_config

REPO = Path(__file__).resolve().parents[1]
BLOCKS = Path(__file__).resolve().parent / "seeds"
SEED_DOCS = Path(os.environ.get("PYVENE_SEEDS_DIR", REPO.parent / "shared" / "seeds"))
# copy prefix -> (seed document, how many python blocks it has)
DOCS = {
    "skill": ("002_20ffd854460a3f2e.txt", 13),
    "api": ("001_c05dd76eebc64155.txt", 22),
    "tutorials": ("003_fd4e7e04cb163857.txt", 6),
}
SKILL_BILINGUAL = "000_153aae5a30df61e8.txt"  # the SKILL page again, English + Chinese
CHANGED = "# changed:"
ATOL = 1e-4


# ----------------------------------------------------------------------------- the runner
@dataclass
class Block:
    ns: dict[str, Any]
    exprs: list[Any] = field(default_factory=list)  # values of top-level expression statements
    history: dict[str, list[Any]] = field(default_factory=dict)  # every top-level assignment
    error: BaseException | None = None


def run_block(name: str, allow_error: bool = False, **names: Any) -> Block:
    """Execute tests/seeds/<name>.py one top-level statement at a time in a fresh namespace
    seeded with ``names``; tracebacks point into the copy."""
    path = BLOCKS / f"{name}.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    block = Block(ns={"__name__": f"seed_{name}", "__file__": str(path), **names})
    for node in tree.body:
        try:
            if isinstance(node, ast.Expr):
                code = compile(ast.Expression(node.value), str(path), "eval")
                block.exprs.append(eval(code, block.ns))
                continue
            exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), block.ns)
        except Exception as err:
            if not allow_error:
                raise
            block.error = err
            return block
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    block.history.setdefault(leaf.id, []).append(block.ns[leaf.id])
    return block


# --------------------------------------------------------------------- independent helpers
def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def run_edited(model, inputs, out_edits=None, in_edits=None, **kwargs) -> Any:
    """``model(**inputs)`` with plain hooks: ``out_edits`` {module: fn(output) -> output},
    ``in_edits`` {module: fn(first input) -> input}; fns may also just record."""
    handles = []
    for module, fn in (out_edits or {}).items():

        def hook(m, args, out, fn=fn):
            if isinstance(out, tuple):
                return (fn(out[0]),) + tuple(out[1:])
            return fn(out)

        handles.append(module.register_forward_hook(hook))
    for module, fn in (in_edits or {}).items():

        def pre(m, args, kw, fn=fn):
            if args:
                return (fn(args[0]),) + tuple(args[1:]), kw
            name = next(iter(kw))  # hidden_states passed by keyword
            return args, {**kw, name: fn(kw[name])}

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
    try:
        with torch.no_grad():
            return model(**inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()


def capture(model, inputs, module, side: str = "out") -> torch.Tensor:
    seen: list[torch.Tensor] = []

    def keep(x):
        seen.append(x.detach().clone())
        return x

    run_edited(model, inputs, **{f"{side}_edits": {module: keep}})
    return seen[0]


def at_positions(values: torch.Tensor, src_pos: list[int], dst_pos: list[int]):
    """fn(x) that writes ``values[:, src_pos]`` into ``x[:, dst_pos]``."""

    def fn(x):
        x = x.clone()
        x[:, dst_pos] = values[:, src_pos].to(x.dtype)
        return x

    return fn


def layers_of(model) -> Any:
    return model.model.layers if hasattr(model, "model") else model.transformer.h


def assert_close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread (restored afterwards), as tests/test_das.py does: with prompts of a
    few tokens extra threads give no speed-up, and on a busy 2-core machine they oversubscribe
    it (measured here: ~40 s for this file with one thread, minutes with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smol_dir() -> str:
    return str(smollm2_path())


@pytest.fixture(scope="module")
def smol(smol_dir):
    """An independent copy of the bundled model for the reference computations."""
    model, tokenizer = pv.load_smollm2()
    return model, tokenizer


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> str:
    """A tiny seeded GPT-2 LM saved with save_pretrained, with the SmolLM2 tokenizer (GPT-2's
    own tokenizer cannot be downloaded here); vocab_size = the tokenizer's length. Weights
    drawn with std 0.2 (not 0.02) so that patching one site visibly moves its outputs."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    config = tiny_gpt2_config(n_layer=4, initializer_range=0.2)
    _, tokenizer, model = create_gpt2_lm(config, seed=0, with_tokenizer=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A local stand-in for the Hugging Face Hub: HfApi uploads copy into a folder,
    snapshot_download serves from it (no network)."""
    import huggingface_hub

    root = tmp_path / "hub"
    root.mkdir()

    class FakeApi:
        def __init__(self, token=None, **kwargs):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
            (root / repo_id).mkdir(parents=True, exist_ok=exist_ok)

        def upload_folder(self, folder_path, repo_id, allow_patterns=None, **kwargs):
            for f in Path(folder_path).iterdir():
                if allow_patterns is None or any(
                    fnmatch.fnmatch(f.name, p) for p in allow_patterns
                ):
                    shutil.copy(f, root / repo_id / f.name)

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        folder = root / repo_id
        if not folder.is_dir():
            raise FileNotFoundError(f"no hub repo {repo_id}")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return root


# ================================================================= the copies are the seeds
def _norm(line: str) -> str:
    return " ".join(line.split())


def copy_lines(path: Path) -> tuple[list[str], int]:
    """The copy's seed lines (header = up to the first blank line, blank lines and
    ``# changed:`` lines dropped, whitespace normalized) and the number of changed lines."""
    lines = path.read_text().splitlines()
    body = lines[lines.index("") + 1 :]
    kept = [_norm(line) for line in body if line.strip() and CHANGED not in line]
    return kept, sum(CHANGED in line for line in body)


def matches(kept: list[str], doc: list[str], changed: int) -> bool:
    """``kept`` appears in ``doc`` in order, skipping at most ``changed`` non-blank lines
    between its first and last line."""
    doc = [line for line in doc if line]
    for start, line in enumerate(doc):
        if line != kept[0]:
            continue
        i, skipped = start, 0
        for want in kept[1:]:
            i += 1
            while i < len(doc) and doc[i] != want and skipped <= changed:
                i, skipped = i + 1, skipped + 1
            if i >= len(doc) or skipped > changed:
                break
        else:
            return True
    return False


def fenced_python(text: str) -> list[list[str]]:
    return [
        [_norm(line) for line in block.splitlines()]
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ]


def test_every_seed_block_has_a_copy():
    for prefix, (_, count) in DOCS.items():
        numbers = {
            int(re.match(rf"{prefix}_(\d+)", p.stem).group(1))
            for p in BLOCKS.glob(f"{prefix}_*.py")
        }
        assert numbers == set(range(1, count + 1)), prefix
    for path in BLOCKS.glob("*.py"):
        header = path.read_text().splitlines()[0]
        assert header.startswith("# Seed: ") and DOCS[path.stem.split("_")[0]][0] in header


@pytest.mark.skipif(not SEED_DOCS.is_dir(), reason="seed documents not present (clean clone)")
def test_copies_match_the_seed_documents():
    for prefix, (doc_name, count) in DOCS.items():
        text = (SEED_DOCS / doc_name).read_text()
        fenced = fenced_python(text)
        if fenced:
            assert len(fenced) == count, doc_name
        for path in sorted(BLOCKS.glob(f"{prefix}_*.py")):
            kept, changed = copy_lines(path)
            n = int(path.stem.split("_")[1])
            doc = fenced[n - 1] if fenced else [_norm(line) for line in text.splitlines()]
            assert matches(kept, doc, changed), f"{path.name} differs from {doc_name} block {n}"
    # the bilingual page holds the same SKILL code with its line breaks collapsed
    squashed = re.sub(r"\s+", "", (SEED_DOCS / SKILL_BILINGUAL).read_text())
    for path in sorted(BLOCKS.glob("skill_*.py")):
        pos = 0
        for line in copy_lines(path)[0]:
            if line.startswith("#"):
                continue  # comment lines became headings there
            found = squashed.find(line.replace(" ", ""), pos)
            assert found >= 0, f"{path.name}: {line!r} not in {SKILL_BILINGUAL}"
            pos = found


def test_copies_are_not_reformatted_and_parse():
    for path in BLOCKS.glob("*.py"):
        ast.parse(path.read_text(), filename=str(path))


# ====================================================================== SKILL.md (000 / 002)
TUTORIAL1 = ("The Colosseum is in the city of", "The Eiffel Tower is in the city of")


def test_skill_01_standard_import_is_this_library():
    block = run_block("skill_01")
    assert Path(block.ns["pv"].__file__).resolve().is_relative_to(REPO / "src" / "pyvene")


@pytest.mark.slow
def test_skill_02_core_concepts_patch_equals_manual_hook(smol_dir, smol):
    block = run_block("skill_02", MODEL_DIR=smol_dir)
    intervenable, ref, tok = block.ns["intervenable"], smol[0], block.ns["tokenizer"]
    assert list(intervenable.interventions) == ["layer_8_comp_block_output_unit_pos_nunit_1#0"]
    assert isinstance(intervenable.interventions[0], pv.VanillaIntervention)
    assert not any(p.requires_grad for p in block.ns["model"].parameters())  # wrapping freezes
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = intervenable(base, [source], {"sources->base": 4})
    layer = layers_of(ref)[8]
    src = capture(ref, source, layer)
    want = run_edited(ref, base, {layer: at_positions(src, [4], [4])}).logits
    assert_close(out.logits, want)


@pytest.mark.slow
def test_skill_03_every_listed_component_resolves_on_smollm2(smol):
    components = run_block("skill_03").ns["components"]
    model, tok = smol
    inputs = tok("The Space Needle is in downtown", return_tensors="pt")
    seq = inputs["input_ids"].shape[1]
    collector = pv.IntervenableModel(
        [
            {"layer": 3, "component": c, "intervention_type": pv.CollectIntervention}
            for c in components
        ],
        model,
    )
    with torch.no_grad():
        (_, got), _ = collector(inputs)
    got = dict(zip(components, got))
    layer = layers_of(model)[3]
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    assert_close(got["block_input"], hidden[3], atol=0)
    assert_close(got["block_output"], hidden[4], atol=0)
    references = {
        "mlp_input": capture(model, inputs, layer.mlp, "in"),
        "mlp_output": capture(model, inputs, layer.mlp),
        "mlp_activation": capture(model, inputs, layer.mlp.act_fn),  # SPEC A: act_fn(gate_proj(x))
        "attention_input": capture(model, inputs, layer.self_attn, "in"),
        "attention_output": capture(model, inputs, layer.self_attn),
        "attention_value_output": capture(model, inputs, layer.self_attn.o_proj, "in"),
        "query_output": capture(model, inputs, layer.self_attn.q_proj),
        "key_output": capture(model, inputs, layer.self_attn.k_proj),
        "value_output": capture(model, inputs, layer.self_attn.v_proj),
    }
    for name, want in references.items():
        assert_close(got[name], want, atol=1e-5)
    heads = got["head_attention_value_output"]  # (batch, heads, seq, head_dim)
    assert heads.shape == (1, 9, seq, 64)
    assert_close(heads.transpose(1, 2).reshape(1, seq, 576), references["attention_value_output"])


def test_skill_04_workflow1_causal_trace_equals_manual_restoration(gpt2_dir):
    block = run_block("skill_04", MODEL_DIR=gpt2_dir)
    ns = block.ns
    model, results = ns["model"], ns["results"]
    clean, corrupted = ns["clean_tokens"], ns["corrupted_tokens"]
    assert results.shape == (model.config.n_layer, clean["input_ids"].shape[1])
    seattle = ns["tokenizer"].encode(" Seattle")[0]
    for layer in range(model.config.n_layer):
        block_module = layers_of(model)[layer]
        src = capture(model, clean, block_module)
        if layer + 1 < model.config.n_layer:  # the seed's clean states (the last is post-ln_f)
            assert_close(src, ns["clean_states"][layer + 1], atol=1e-5)
        for pos in range(results.shape[1]):
            logits = run_edited(
                model, corrupted, {block_module: at_positions(src, [pos], [pos])}
            ).logits
            want = torch.softmax(logits[0, -1], -1)[seattle]
            torch.testing.assert_close(results[layer, pos], want, rtol=1e-5, atol=0)
    assert results.max() > 1.1 * results.min()  # restoring a position matters (a random model)


def test_skill_05_workflow2_attention_patching_equals_manual_hook(gpt2_dir):
    block = run_block("skill_05", MODEL_DIR=gpt2_dir)
    ns = block.ns
    model, clean, corrupted = ns["model"], ns["clean_tokens"], ns["corrupted_tokens"]
    assert len(ns["results"]) == model.config.n_layer
    for layer, diff in enumerate(ns["results"]):
        attn = layers_of(model)[layer].attn
        src = capture(model, clean, attn)
        logits = run_edited(model, corrupted, {attn: lambda x, src=src: src}).logits
        assert abs(diff - ns["logit_diff"](logits).item()) < 1e-5
    assert max(ns["results"]) - min(ns["results"]) > 0.1


def _iit_data(tok, n: int):
    base = tok("The capital of Italy is", return_tensors="pt")
    source = tok("The capital of France is", return_tensors="pt")
    target = torch.tensor([tok.encode(" Paris")[0]])
    return base, source, target, [(base, source, target)] * n


class LastTokenCE:
    """criterion(logits, target) for the IIT loops; records each loss."""

    def __init__(self):
        self.losses: list[float] = []

    def __call__(self, logits, target):
        loss = torch.nn.functional.cross_entropy(logits[:, -1], target)
        self.losses.append(loss.item())
        return loss


@pytest.mark.slow
def test_skill_06_workflow3_full_rank_rotation_is_a_plain_swap(smol_dir, smol, monkeypatch):
    """As written (SPEC A): RotatedSpace ignores low_rank_dimension (with a warning) and,
    without subspaces, swaps every rotated coordinate: the output is the source run's and the
    gradient is zero, so the loop learns nothing."""
    monkeypatch.setattr(pv.RotatedSpaceIntervention, "_warned_low_rank", False)
    base, source, target, data = _iit_data(smol[1], 2)
    criterion = LastTokenCE()
    with pytest.warns(UserWarning, match="low_rank_dimension has no effect") as record:
        block = run_block("skill_06", MODEL_DIR=smol_dir, dataloader=data, criterion=criterion)
    (warning,) = [w for w in record if "low_rank_dimension" in str(w.message)]
    assert warning.filename == str(BLOCKS / "skill_06.py")  # it names the user's line
    ns = block.ns
    rotation = ns["rotation"]
    assert rotation.weight.shape == (576, 576)
    with torch.no_grad():
        source_logits = smol[0](**source).logits
    assert_close(ns["outputs"].logits.detach(), source_logits, atol=5e-4)
    grads = [p.grad for p in ns["intervenable"].get_trainable_parameters()]
    assert all(g is None or g.abs().max() < 1e-4 for g in grads)  # ~1 for the corrected form
    assert abs(criterion.losses[0] - criterion.losses[-1]) < 1e-3


@pytest.mark.slow
def test_skill_06_corrected_low_rank_das_trains(smol_dir, smol):
    base, source, target, data = _iit_data(smol[1], 4)
    criterion = LastTokenCE()
    block = run_block(
        "skill_06_corrected", MODEL_DIR=smol_dir, dataloader=data, criterion=criterion
    )
    ns = block.ns
    w = ns["rotation"].weight
    assert w.shape == (576, 64)
    assert_close(w.T @ w, torch.eye(64), atol=1e-4)  # orthonormal columns after training
    assert criterion.losses[-1] < criterion.losses[0] - 1.0, criterion.losses  # 5.7 -> 4.2
    assert all(p.grad is None for p in ns["model"].parameters())  # the model stays frozen


STEER_LAYERS = (9, 15)


def steering_vectors() -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {layer: 3.0 * torch.randn(576, generator=g) for layer in STEER_LAYERS}


@pytest.mark.slow
def test_skill_08_workflow4_steering_loaded_from_the_hub(smol_dir, smol, fake_hub):
    # an ITI-style intervention for SmolLM2, published under the seed's repo id
    model, tok = smol
    vecs = steering_vectors()
    published = pv.IntervenableModel(
        [
            {"layer": layer, "component": "attention_value_output",
             "intervention_type": pv.AdditionIntervention, "source_representation": vec}
            for layer, vec in vecs.items()
        ],
        model,
    )  # fmt: skip
    published.push_to_hub("zhengxuanzenwu/intervenable_honest_llama2_chat_7B")

    block = run_block("skill_08", MODEL_DIR=smol_dir)
    ids, prompt = block.ns["outputs"], block.ns["inputs"]["input_ids"]
    n = prompt.shape[1]
    assert ids.shape == (1, n + 100) and torch.equal(ids[:, :n], prompt)

    # teacher-forced reference without the cache: the vectors sit on every generated token
    # that was fed back (positions n .. end-1); greedy decoding must pick each next token
    def add_after_prompt(vec):
        def fn(x):
            x = x.clone()
            x[:, n:] += vec
            return x

        return fn

    edits = {
        layers_of(model)[layer].self_attn.o_proj: add_after_prompt(v) for layer, v in vecs.items()
    }
    steered = run_edited(model, {"input_ids": ids[:, :-1]}, in_edits=edits).logits
    assert torch.equal(steered[0, n - 1 :].argmax(-1), ids[0, n:])
    plain = run_edited(model, {"input_ids": ids[:, :-1]}).logits
    assert not torch.equal(plain[0, n - 1 :].argmax(-1), ids[0, n:])  # the steering matters


def _saveable(model) -> pv.IntervenableModel:
    """A trainable DAS (weights moved off their init) plus a constant steering vector."""
    torch.manual_seed(1)
    pvm = pv.IntervenableModel(
        [
            {"layer": 4, "component": "block_output", "low_rank_dimension": 2,
             "intervention_type": pv.LowRankRotatedSpaceIntervention},
            {"layer": 9, "component": "attention_value_output",
             "intervention_type": pv.AdditionIntervention,
             "source_representation": steering_vectors()[9]},
        ],
        model,
    )  # fmt: skip
    opt = torch.optim.SGD(pvm.get_trainable_parameters(), lr=0.5)
    for p in pvm.get_trainable_parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return pvm


def _same_interventions(a: pv.IntervenableModel, b: pv.IntervenableModel, tok) -> None:
    assert list(a.interventions) == list(b.interventions)
    for key in a.interventions:
        sa, sb = a.interventions[key].state_dict(), b.interventions[key].state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    loc = {"sources->base": 5}
    with torch.no_grad():
        out_a, out_b = a(base, [source], loc)[1].logits, b(base, [source], loc)[1].logits
        plain = a.model(**base).logits
    assert torch.equal(out_a, out_b) and not torch.allclose(out_a, plain)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["skill_09", "api_04"])
def test_saving_block_as_written_stops_at_load_of_save_intervention(
    name, smol, tmp_path, monkeypatch
):
    """SPEC A: save_intervention() keeps the original meaning (trainable weights, local), so
    load() of its folder fails with a hint; the local save/load pair before it works."""
    model, tok = smol
    monkeypatch.chdir(tmp_path)
    original = _saveable(model)
    block = run_block(name, allow_error=True, pv=pv, intervenable=original, model=model)
    assert isinstance(block.error, pv.SerializationError)
    assert "use load_intervention" in str(block.error)
    (local,) = block.history["intervenable"]
    _same_interventions(original, local, tok)
    assert {p.name for p in (tmp_path / "my_intervention").iterdir()} == {
        "config.json",
        "interventions.safetensors",
    }
    assert (tmp_path / "username/my-intervention/trainable_interventions.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["skill_09_corrected", "api_04_corrected"])
def test_saving_block_corrected_shares_through_the_hub(name, smol, tmp_path, monkeypatch, fake_hub):
    model, tok = smol
    monkeypatch.chdir(tmp_path)
    original = _saveable(model)
    block = run_block(name, pv=pv, intervenable=original, model=model)
    local, shared = block.history["intervenable"]
    _same_interventions(original, local, tok)
    _same_interventions(original, shared, tok)
    assert {p.name for p in (fake_hub / "username/my-intervention").iterdir()} == {
        "config.json",
        "interventions.safetensors",
    }
    assert not (tmp_path / "username").exists()  # nothing written locally under the repo id


@pytest.mark.slow
def test_skill_10_wrong_component_is_named_right_one_works(smol):
    model, tok = smol
    block = run_block("skill_10", pv=pv)
    wrong, right = block.history["config"]
    with pytest.raises(pv.UnknownComponentError, match="'mlp'.*Did you mean.*'mlp_output'"):
        pv.IntervenableModel(wrong, model)
    patch = pv.IntervenableModel(right, model)
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = patch(base, [source], {"sources->base": 2})
    mlp = layers_of(model)[0].mlp  # layer 0 is the default
    want = run_edited(model, base, {mlp: at_positions(capture(model, source, mlp), [2], [2])})
    assert_close(out.logits, want.logits)


@pytest.mark.slow
def test_skill_11_explicit_position_five(smol):
    model, tok = smol
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    intervenable = pv.IntervenableModel(
        pv.RepresentationConfig(unit="pos", max_number_of_units=1), model
    )
    block = run_block(
        "skill_11", pv=pv, intervenable=intervenable, base_tokens=base, source_tokens=source
    )
    assert block.ns["config"] == pv.RepresentationConfig(0, "block_output", "pos", 1)
    original, out = block.exprs[0]
    assert original is None
    layer = layers_of(model)[0]
    want = run_edited(model, base, {layer: at_positions(capture(model, source, layer), [5], [5])})
    assert_close(out.logits, want.logits)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers renames the method in v6
def test_skill_12_gradient_checkpointing_keeps_intervention_gradients(smol_dir, smol):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smol_dir)  # this block changes its model
    block = run_block("skill_12", pv=pv, model=model)
    assert model.is_gradient_checkpointing
    ref_model, tok = smol
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = pv.IntervenableModel(block.ns["config"], model)(
            base, [source], {"sources->base": 3}
        )
    layer = layers_of(ref_model)[8]
    want = run_edited(
        ref_model, base, {layer: at_positions(capture(ref_model, source, layer), [3], [3])}
    )
    assert_close(out.logits, want.logits)

    grads = []
    for m in (model, ref_model):  # checkpointed (train mode) vs plain
        torch.manual_seed(0)
        das = pv.IntervenableModel(
            {"layer": 8, "component": "block_output", "low_rank_dimension": 4,
             "intervention_type": pv.LowRankRotatedSpaceIntervention}, m)  # fmt: skip
        das.train()
        _, out = das(base, [source], {"sources->base": 3})
        out.logits[0, -1].logsumexp(-1).backward()
        grads.append(das.interventions[0].rotate_layer.parametrizations.weight.original.grad)
        das.eval()
    assert ref_model.training is False
    assert grads[0].abs().max() > 0
    assert_close(grads[0], grads[1], atol=1e-5)


@pytest.mark.slow
def test_skill_13_lora_adds_low_rank_update_of_the_block_input(smol):
    model, tok = smol
    config = run_block("skill_13", pv=pv).ns["config"]
    lora = pv.IntervenableModel(config, model)
    adapter = lora.interventions[0]
    assert {n for n, _ in adapter.named_parameters()} == {"lora_A.weight", "lora_B.weight"}
    assert adapter.lora_A.weight.shape == (16, 576)
    base = tok(TUTORIAL1[0], return_tensors="pt")
    with torch.no_grad():
        plain = model(**base).logits
        assert_close(lora(base)[1].logits, plain, atol=0)  # B starts at zero
        adapter.lora_B.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        _, out = lora(base)
    layer = layers_of(model)[0]
    x = capture(model, base, layer, "in")
    a, b = adapter.lora_A.weight, adapter.lora_B.weight
    want = run_edited(model, base, {layer: lambda y: y + x @ a.T @ b.T})
    assert_close(out.logits, want.logits)
    assert not torch.allclose(out.logits, plain)


# ============================================================================ api.md (001)
IOI = (
    "When John and Mary went to the store, John gave a bottle to",
    "When John and Mary went to the store, Mary gave a bottle to",
)


def pair(tok, prompts=TUTORIAL1):
    return tuple(tok(p, return_tensors="pt") for p in prompts)


def manual_patch(model, base, source, layer: int, src_pos, dst_pos, module=None):
    """Logits of ``base`` with ``module`` (default: block ``layer``) output at ``dst_pos`` taken
    from the source run's ``src_pos``."""
    module = layers_of(model)[layer] if module is None else module
    s = capture(model, source, module)
    return run_edited(model, base, {module: at_positions(s, src_pos, dst_pos)}).logits


@pytest.mark.slow
def test_api_01_basic_usage(smol_dir, smol):
    ns = run_block("api_01", MODEL_DIR=smol_dir).ns
    intervenable, model = ns["intervenable"], smol[0]
    assert intervenable.model is ns["model"]
    assert list(intervenable.interventions) == ["layer_5_comp_block_output_unit_pos_nunit_1#0"]
    base, source = pair(smol[1])
    with torch.no_grad():
        _, out = intervenable(base, [source], {"sources->base": ([[[2]]], [[[6]]])})
    assert_close(out.logits, manual_patch(model, base, source, 5, [2], [6]))


@pytest.fixture(scope="module")
def api_intervenable(smol_dir):
    """api.md's running example: the Basic Usage block's model (layer 5 block_output swap)."""
    return run_block("api_01", MODEL_DIR=smol_dir).ns


@pytest.mark.slow
def test_api_02_forward_pass_shapes_and_values(api_intervenable, smol):
    model, tok = smol
    base, source = pair(tok)
    ns = run_block(
        "api_02",
        intervenable=api_intervenable["intervenable"],
        base_inputs=base,
        source_inputs=source,
    ).ns
    seq = base["input_ids"].shape[1]
    assert ns["original_output"] is None  # only with output_original_output=True
    assert_close(
        ns["intervened_output"].logits,
        manual_patch(model, base, source, 5, list(range(seq)), list(range(seq))),
    )
    assert_close(ns["outputs"].logits, manual_patch(model, base, source, 5, [5], [5]))
    with torch.no_grad():
        assert_close(ns["original"].logits, model(**base).logits)
    assert torch.equal(ns["intervened"].logits, ns["intervened_output"].logits)


@pytest.mark.slow
def test_api_03_generation_intervenes_on_the_prompt(api_intervenable, smol):
    """SPEC A: with sources and no unit_locations, generate() intervenes on the prompt as
    forward() would, then decodes on from that state."""
    model, tok = smol
    base, source = pair(tok)
    ns = run_block(
        "api_03",
        intervenable=api_intervenable["intervenable"],
        base_inputs=base,
        source_inputs=source,
    ).ns
    original, ids = ns["outputs"]
    n = base["input_ids"].shape[1]
    assert original is None and torch.equal(ids[:, :n], base["input_ids"])
    assert n < ids.shape[1] <= n + 50
    # teacher-forced reference without the cache: prompt positions of layer 5 from the source
    layer = layers_of(model)[5]
    s = capture(model, source, layer)
    want = run_edited(
        model, {"input_ids": ids[:, :-1]}, {layer: at_positions(s, list(range(n)), list(range(n)))}
    ).logits
    assert torch.equal(want[0, n - 1 :].argmax(-1), ids[0, n:])


@pytest.mark.slow
def test_api_05_optimizer_gets_only_the_intervention_weights(smol):
    model, _ = smol
    das = pv.IntervenableModel(
        {"layer": 5, "component": "block_output", "low_rank_dimension": 64,
         "intervention_type": pv.LowRankRotatedSpaceIntervention}, model)  # fmt: skip
    ns = run_block("api_05", intervenable=das, torch=torch).ns
    (weight,) = ns["params"]
    assert weight is das.interventions[0].rotate_layer.parametrizations.weight.original
    assert ns["optimizer"].param_groups[0]["params"] == [weight]
    assert ns["optimizer"].param_groups[0]["lr"] == 1e-4


@pytest.mark.slow
def test_api_06_basic_config(smol):
    model, tok = smol
    config = run_block("api_06", pv=pv).ns["config"]
    assert [tuple(r[:4]) for r in config.representations] == [(5, "block_output", "pos", 1)]
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pv.IntervenableModel(config, model)(base, [source], {"sources->base": 3})
    assert_close(out.logits, manual_patch(model, base, source, 5, [3], [3]))


@pytest.mark.slow
def test_api_07_multiple_interventions_collect_three_sites(smol):
    model, tok = smol
    config = run_block("api_07", pv=pv).ns["config"]
    inputs = tok(TUTORIAL1[1], return_tensors="pt")
    with torch.no_grad():
        (_, got), _ = pv.IntervenableModel(config, model)(inputs)
    layers = layers_of(model)
    want = [
        capture(model, inputs, layers[3]),
        capture(model, inputs, layers[5].mlp),
        capture(model, inputs, layers[7].self_attn),
    ]
    assert len(got) == 3
    for g, w in zip(got, want):
        assert_close(g, w, atol=1e-5)


@pytest.mark.slow
def test_api_08_example_configs(smol):
    model, tok = smol
    position, low_rank, subspace = run_block("api_08", pv=pv).exprs
    base, source = pair(tok)
    layer = layers_of(model)[5]
    s = capture(model, source, layer)
    with torch.no_grad():
        _, out = pv.IntervenableModel(position, model)(base, [source], {"sources->base": 4})
    assert_close(out.logits, manual_patch(model, base, source, 5, [4], [4]))

    das = pv.IntervenableModel(low_rank, model)
    w = das.interventions[0].rotate_layer.weight.detach()
    assert w.shape == (576, 64)
    with torch.no_grad():
        _, out = das(base, [source], {"sources->base": 4})

    def project(x):
        x = x.clone()
        x[:, 4] = x[:, 4] + (s[:, 4] - x[:, 4]) @ w @ w.T
        return x

    assert_close(out.logits, run_edited(model, base, {layer: project}).logits)

    split = pv.IntervenableModel(subspace, model)
    for index, (lo, hi) in enumerate(subspace.subspace_partition):
        with torch.no_grad():
            _, out = split(base, [source], {"sources->base": 4}, subspaces=[[[index]]])

        def part(x, lo=lo, hi=hi):
            x = x.clone()
            x[:, 4, lo:hi] = s[:, 4, lo:hi]
            return x

        assert_close(out.logits, run_edited(model, base, {layer: part}).logits)


BASIC = {
    "api_09": lambda b, s: s,  # Vanilla
    "api_10": lambda b, s: b + s,  # Addition
    "api_11": lambda b, s: b - s,  # Subtraction
    "api_12": lambda b, s: torch.zeros_like(b),  # Zero
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BASIC))
def test_api_basic_interventions_equal_their_formula(name, smol):
    model, tok = smol
    (rep,) = run_block(name, pv=pv).exprs
    base, source = pair(tok)
    pvm = pv.IntervenableModel(rep, model)
    sources = None if rep.intervention_type is pv.ZeroIntervention else [source]
    with torch.no_grad():
        _, out = pvm(base, sources, {"sources->base": 4} if sources else {"base": 4})
    layer = layers_of(model)[5]
    s = capture(model, source, layer)

    def fn(x):
        x = x.clone()
        x[:, 4] = BASIC[name](x[:, 4], s[:, 4])
        return x

    assert_close(out.logits, run_edited(model, base, {layer: fn}).logits)


@pytest.mark.slow
def test_api_13_collect_returns_the_block_output(smol):
    model, tok = smol
    inputs = tok(TUTORIAL1[0], return_tensors="pt")
    ns = run_block("api_13", pv=pv, model=model, inputs=inputs).ns
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    (got,) = ns["collected"]
    assert_close(got, hidden[6], atol=0)
    # the seed's "_, collected = ..." would bind the model's output instead (SPEC A)
    with torch.no_grad():
        _, as_written = ns["intervenable"](base=inputs)
    assert hasattr(as_written, "logits")


ROTATIONS = ("api_14", "api_15", "api_16", "api_17")


@pytest.mark.slow
@pytest.mark.parametrize("name", ROTATIONS)
def test_api_trainable_interventions_equal_their_formula(name, smol):
    model, tok = smol
    (rep,) = run_block(name, pv=pv).exprs
    torch.manual_seed(0)
    pvm = pv.IntervenableModel(rep, model)
    inter = pvm.interventions[0]
    if name == "api_17":  # move the sigmoid mask off its uniform 0.5 start
        with torch.no_grad():
            inter.mask.normal_(0, 0.02)
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": 4})
    layer = layers_of(model)[5]
    s = capture(model, source, layer)[:, 4]
    with torch.no_grad():
        if name == "api_14":  # SPEC A: no subspaces = every rotated coordinate = a swap
            formula = lambda b: s  # noqa: E731
        elif name == "api_15":
            w = inter.rotate_layer.weight
            assert w.shape == (576, 64)
            formula = lambda b: b + (s - b) @ w @ w.T  # noqa: E731
        elif name == "api_16":
            r, m = inter.rotate_layer.weight, inter.mask()
            formula = lambda b: ((1 - m) * (b @ r) + m * (s @ r)) @ r.T  # noqa: E731
        else:
            m = torch.sigmoid(inter.mask / inter.temperature)
            formula = lambda b: (1 - m) * b + m * s  # noqa: E731

    def fn(x):
        x = x.clone()
        x[:, 4] = formula(x[:, 4])
        return x

    assert_close(out.logits, run_edited(model, base, {layer: fn}).logits, atol=2e-4)


@pytest.mark.slow
def test_api_18_19_unit_location_forms(smol):
    model, tok = smol
    base, source = pair(tok, IOI)
    pvm = pv.IntervenableModel(
        {"layer": 5, "component": "block_output", "max_number_of_units": 1}, model
    )
    fmt = run_block("api_18", source_locations=[[[3]]], base_locations=[[[5]]]).ns
    examples = run_block("api_19").history["unit_locations"]
    cases = [(fmt["unit_locations"], [3], [5])] + [
        (loc, loc["sources->base"][0][0][0], loc["sources->base"][1][0][0]) for loc in examples
    ]
    assert [c[1:] for c in cases[1:]] == [([5], [5]), ([3, 5, 7], [3, 5, 7]), ([5], [10])]
    for loc, src_pos, dst_pos in cases:
        with torch.no_grad():
            _, out = pvm(base, [source], loc)
        assert_close(out.logits, manual_patch(model, base, source, 5, src_pos, dst_pos))


@pytest.mark.slow
def test_api_20_activation_patching_whole_layer(smol):
    model, tok = smol
    config = run_block("api_20", pv=pv, layer=12).ns["config"]
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pv.IntervenableModel(config, model)(base, [source])
        source_logits = model(**source).logits
    # every position of layer 12 from the source: the rest of the run is the source's
    assert_close(out.logits, source_logits)


@pytest.mark.slow
def test_api_21_noise_then_restore(smol):
    model, tok = smol
    config = run_block("api_21", pv=pv, target_layer=12).ns["config"]
    tracer = pv.IntervenableModel(config, model)
    clean = tok(TUTORIAL1[1], return_tensors="pt")
    with torch.no_grad():
        _, noised = tracer(clean, [None, None])  # the noise alone (no source for the restore)
        _, restored = tracer(clean, [clean])  # one source serves every group
        clean_logits = model(**clean).logits
    noise = tracer.interventions[0]  # seeded Gaussian, ROME's GPT-2 XL scale by default
    gen = torch.Generator().manual_seed(noise.seed)
    seq = clean["input_ids"].shape[1]
    delta = torch.randn((1, seq, 576), generator=gen) * noise.noise_level
    want = run_edited(model, clean, in_edits={layers_of(model)[0]: lambda x: x + delta}).logits
    assert_close(noised.logits, want)
    assert not torch.allclose(noised.logits, clean_logits, atol=1e-2)
    assert_close(restored.logits, clean_logits)  # every position restored at layer 12


@pytest.mark.slow
@pytest.mark.parametrize("name, names", [("skill_07", {}), ("api_22", {"layer": 8})])
def test_das_rank_one_quick_reference(name, names, smol):
    config = run_block(name, pv=pv, **names).ns["config"]
    model, tok = smol
    das = pv.IntervenableModel(config, model)
    w = das.interventions[0].rotate_layer.weight.detach()
    assert w.shape == (576, 1)
    base, source = pair(tok)
    with torch.no_grad():
        _, out = das(base, [source], {"sources->base": ([[[6]]], [[[6]]])})
    layer = layers_of(model)[8]
    s = capture(model, source, layer)

    def project(x):
        x = x.clone()
        x[:, 6] = x[:, 6] + (s[:, 6] - x[:, 6]) @ w @ w.T
        return x

    assert_close(out.logits, run_edited(model, base, {layer: project}).logits)


# ====================================================================== tutorials.md (003)
@pytest.mark.slow
def test_tutorials_1_whole_layer_patch_makes_the_run_the_sources(smol_dir, smol):
    ns = run_block("tutorials_1", MODEL_DIR=smol_dir).ns
    model = smol[0]
    base, source = ns["base_inputs"], ns["source_inputs"]
    want = manual_patch(model, base, source, 8, list(range(9)), list(range(9)))
    assert_close(ns["patched_logits"], want)
    with torch.no_grad():  # both prompts have 9 tokens: from layer 8 on it is the source run
        source_probs = torch.softmax(model(**source).logits[0, -1], -1)
    assert_close(ns["probs"], source_probs, atol=1e-5)
    assert ns["probs"][ns["paris_token"]] > 0.5 > ns["probs"][ns["rome_token"]]


def test_tutorials_2_causal_trace_restores_the_clean_run(gpt2_dir):
    """No unit_locations: each restoration puts back the whole clean layer, so every layer gives
    the clean probability; the noise alone changes it."""
    ns = run_block("tutorials_2", MODEL_DIR=gpt2_dir).ns
    results, n_layer = ns["results"], ns["model"].config.n_layer
    assert results.shape == (n_layer,)
    assert abs(results / ns["clean_prob"] - 1).max() < 1e-4  # a random model: P ~ 1/vocab
    assert len(ns["critical_layers"]) == min(5, n_layer)
    with torch.no_grad():
        _, noised = ns["intervenable"](ns["clean_inputs"])  # no source: the noise only
    clean_logits = ns["clean_outputs"].logits
    assert not torch.allclose(noised.logits, clean_logits, atol=1e-3)


@pytest.mark.slow
def test_tutorials_3_self_source_learns_nothing(smol_dir, smol):
    """As written (SPEC A): source == base, so the intervention is the identity and its
    gradient is zero."""
    ns = run_block("tutorials_3", MODEL_DIR=smol_dir, STEPS=3).ns
    rotation = ns["rotation"]
    assert (
        rotation is ns["intervenable"].interventions["layer_6_comp_block_output_unit_pos_nunit_1#0"]
    )
    assert rotation.rotate_layer.weight.shape == (576, 64)
    with torch.no_grad():
        base_logits = smol[0](**ns["base_inputs"]).logits[0, -1]
    base_loss = -torch.log_softmax(base_logits, -1)[ns["target_token"]]
    assert abs(ns["loss"].item() - base_loss.item()) < 1e-3
    grads = [p.grad for p in ns["intervenable"].get_trainable_parameters()]
    assert all(g is None or g.abs().max() < 1e-5 for g in grads)


@pytest.mark.slow
def test_tutorials_3_corrected_das_moves_paris(smol_dir, smol):
    ns = run_block("tutorials_3_corrected", MODEL_DIR=smol_dir, STEPS=10).ns
    model, target = smol[0], ns["target_token"]
    with torch.no_grad():
        base_loss = -torch.log_softmax(model(**ns["base_inputs"]).logits[0, -1], -1)[target]
        _, out = ns["intervenable"](ns["base_inputs"], [ns["source_inputs"]])
    assert ns["loss"].item() < base_loss.item() - 3  # ~7 nats before training
    assert torch.softmax(out.logits[0, -1], -1)[target] > 0.5
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_tutorials_4_position_specific(smol_dir, smol):
    block = run_block("tutorials_4", MODEL_DIR=smol_dir)
    base, source = block.ns["base_inputs"], block.ns["source_inputs"]
    one, two = block.history["outputs"]
    model = smol[0]
    assert_close(one.logits, manual_patch(model, base, source, 5, [0], [0]))
    assert_close(two.logits, manual_patch(model, base, source, 5, [0, 2], [0, 2]))


@pytest.mark.slow
def test_tutorials_5_collected_activations(smol_dir, smol):
    ns = run_block("tutorials_5", MODEL_DIR=smol_dir).ns
    model, inputs = smol[0], ns["inputs"]
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    assert_close(ns["layer5_output"], hidden[6], atol=0)
    attn = capture(model, inputs, layers_of(model)[10].self_attn)
    assert_close(ns["layer10_attn"], attn, atol=1e-5)
    assert ns["layer10_attn"].shape == (1, 2, 576)


@pytest.mark.slow
def test_tutorials_6_steering_block(smol_dir, smol):
    """The collected direction is the MLP-output mean difference; the generate() call gives the
    AdditionIntervention no source, so it samples exactly what the plain model samples."""
    torch.manual_seed(0)
    ns = run_block("tutorials_6", MODEL_DIR=smol_dir).ns
    model = smol[0]
    mlp = layers_of(model)[6].mlp
    happy = capture(model, ns["happy_inputs"], mlp).mean(dim=1)
    sad = capture(model, ns["sad_inputs"], mlp).mean(dim=1)
    assert_close(ns["steering_direction"], happy - sad, atol=1e-5)
    torch.manual_seed(0)
    plain = model.generate(**ns["inputs"], max_new_tokens=20, do_sample=True, temperature=0.7)
    assert torch.equal(ns["output"], plain)
