"""Fixtures of the seed-document tests: the bundled SmolLM2, a tiny seeded GPT-2 folder, a
local stand-in for the Hugging Face Hub, and one torch thread per module."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import pytest
import torch

import pyvene as pv
from pyvene.zoo import create_gpt2_lm, smollm2_path, tiny_gpt2_config


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
