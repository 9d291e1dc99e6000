"""The query-length study: token counts and budgets of every main-environment family (the
tiny models, against each tokenizer called directly), and the study's rules (split
metrics, the effective budget) on hand-worked numbers. LAVIS' family is tested in
tests/test_models_lavis.py, the stages in tests/test_pipeline.py."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from kisbench.config.length import DEFAULT_BUDGETS, model_budgets
from kisbench.evaluation.length import effective_budget, split_metrics
from kisbench.models import load_model
from tests.models_support import cosine_rows

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture

ENTRIES = {
    "tiny_clip": {"family": "open_clip", "model": "local-dir:{root}/tiny_clip"},
    "tiny_siglip": {"family": "open_clip", "model": "local-dir:{root}/tiny_siglip"},
    "tiny_align": {"family": "align", "source": "{root}/tiny_align"},
    "tiny_blip2_hf": {"family": "blip2_hf", "source": "{root}/tiny_blip2_hf", "context_length": 35},
}
CONTEXTS = {"tiny_clip": 77, "tiny_siglip": 64, "tiny_align": 512, "tiny_blip2_hf": 35}
TEXTS = [
    "a dog",
    "A red car parked in front of a white house, with a green door!",
    "dog " * 120,
    "",
]
CLIP_EOT = 49407  # open_clip's SimpleTokenizer: <end_of_text>, the highest id


@pytest.fixture(scope="module", params=list(ENTRIES))
def loaded(request: pytest.FixtureRequest, tiny_root: Path):
    key = request.param
    entry = {
        k: v.format(root=tiny_root) if isinstance(v, str) else v for k, v in ENTRIES[key].items()
    }
    return key, tiny_root, load_model(key, entry, device="cpu", precision="fp32")


def direct_counts(key: str, root: Path, model, texts: list[str]) -> list[int]:
    """Tokens per text, special tokens included, by the tokenizer itself: open_clip's
    tokenizer with a context no text reaches (the ids that are not padding), or the
    transformers tokenizer loaded from the model's folder."""
    if key == "tiny_clip":
        ids = model.tokenizer(texts, context_length=1000)
        return [int((row != 0).sum()) for row in ids]
    if key == "tiny_siglip":
        pad = model.tokenizer.tokenizer.pad_token_id
        ids = model.tokenizer(texts, context_length=1000)
        return [int((row != pad).sum()) for row in ids]
    tok = AutoTokenizer.from_pretrained(root / key)
    return [len(tok(t)["input_ids"]) for t in texts]


def test_token_counts_match_the_tokenizer_itself(loaded) -> None:
    key, root, model = loaded
    assert model.token_counts(TEXTS) == direct_counts(key, root, model, TEXTS)
    assert model.context_tokens() == CONTEXTS[key]


def test_truncated_means_more_tokens_than_the_context(loaded) -> None:
    _, _, model = loaded
    counts = model.token_counts(TEXTS)
    assert model.truncated(TEXTS) == [n > model.context_tokens() for n in counts]


def test_the_full_budget_embeds_as_the_plain_path(loaded) -> None:
    _, _, model = loaded
    plain = model.encode_texts(TEXTS)
    np.testing.assert_allclose(
        model.encode_texts_cut(TEXTS, model.context_tokens()), plain, atol=1e-6
    )


@pytest.mark.parametrize("budget", [2, 5, 16, 33])
def test_a_cut_text_embeds_as_the_text_of_its_first_tokens(loaded, budget: int) -> None:
    """One token per "dog" in every tiny tokenizer: a long run of dogs cut to B tokens is
    the text of as many dogs as fit in B next to the special tokens, which nothing cuts."""
    key, root, model = loaded
    specials = direct_counts(key, root, model, ["dog"])[0] - 1
    assert direct_counts(key, root, model, ["dog " * 7])[0] == 7 + specials  # one token each
    short = "dog " * (budget - specials)
    assert not model.truncated([short])[0]
    cut = model.encode_texts_cut(["dog " * 120], budget)
    np.testing.assert_allclose(cut, model.encode_texts([short]), atol=1e-6)
    if budget < 16:  # and the cut does change the embedding of the long text
        assert cosine_rows(cut, model.encode_texts(["dog " * 120]))[0] < 1 - 1e-6


def test_budget_never_beyond_the_context(loaded) -> None:
    _, _, model = loaded
    with pytest.raises(ValueError, match="outside"):
        model.encode_texts_cut(TEXTS, model.context_tokens() + 1)
    with pytest.raises(ValueError, match="outside"):
        model.encode_texts_cut(TEXTS, 1)


def test_clip_cut_ends_with_the_end_of_text_token(tiny_root: Path, monkeypatch) -> None:
    """CLIP pools at the end-of-text token: the cut sequence must end with it, then only
    padding up to the full context."""
    entry = {"family": "open_clip", "model": f"local-dir:{tiny_root}/tiny_clip"}
    model = load_model("tiny_clip", entry, device="cpu", precision="fp32")
    seen = []
    real = model.model.encode_text

    def spy(tokens: torch.Tensor) -> torch.Tensor:
        seen.append(tokens.clone())
        return real(tokens)

    monkeypatch.setattr(model.model, "encode_text", spy)
    texts = ["dog " * 120, "a red car parked in front of a white house", "a dog"]
    for budget in (5, 8, 16):
        model.encode_texts_cut(texts, budget)
        tokens = seen[-1]
        assert tokens.shape == (3, 77)
        for row, n in zip(tokens.tolist(), model.token_counts(texts), strict=True):
            kept = min(n, budget)
            assert row[kept - 1] == CLIP_EOT and CLIP_EOT not in row[: kept - 1]
            assert row[kept:] == [0] * (77 - kept)


def test_model_budgets_never_exceed_the_context() -> None:
    rng = random.Random(0)
    for _ in range(500):
        budgets = [rng.randint(2, 600) for _ in range(rng.randint(0, 9))]
        context = rng.randint(2, 600)
        got = model_budgets(budgets, context)
        assert got == sorted(set(got)) and got[-1] == context and max(got) <= context
        assert set(got) == {b for b in budgets if b < context} | {context}
    assert model_budgets(DEFAULT_BUDGETS, 77) == [8, 16, 24, 32, 48, 64, 77]
    assert model_budgets(DEFAULT_BUDGETS, 64) == [8, 16, 24, 32, 48, 64]
    assert model_budgets(DEFAULT_BUDGETS, 35) == [8, 16, 24, 32, 35]
    assert model_budgets(DEFAULT_BUDGETS, 32) == [8, 16, 24, 32]


def test_split_metrics_by_hand() -> None:
    # ranks 1, 2, 4, 10 of 10 images; queries 1 and 3 truncated
    ranks = np.array([1, 2, 4, 10])
    truncated = np.array([True, False, True, False])
    got = split_metrics(ranks, truncated, 10, n_boot=200, seed=0)
    assert [got[p]["queries"] for p in ("all", "truncated", "untruncated")] == [4, 2, 2]
    cut, kept, every = (got[p]["metrics"] for p in ("truncated", "untruncated", "all"))
    assert cut["mrr"]["value"] == pytest.approx((1 + 1 / 4) / 2)  # 0.625
    assert kept["mrr"]["value"] == pytest.approx((1 / 2 + 1 / 10) / 2)  # 0.3
    assert every["mrr"]["value"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 10) / 4)
    assert cut["r@1"]["value"] == 0.5 and kept["r@1"]["value"] == 0.0
    assert cut["r@5"]["value"] == 1.0 and kept["r@5"]["value"] == 0.5
    assert cut["median_rank"]["value"] == 2.5 and kept["median_rank"]["value"] == 6.0
    assert cut["mean_rank"]["value"] == 2.5 and kept["mean_rank"]["value"] == 6.0
    for part in (cut, kept):
        for m in part.values():
            assert m["low"] <= m["value"] <= m["high"]
    # a target never found (rank N + 1) adds 0 to MRR and counts as rank N + 1
    got = split_metrics(np.array([11, 1]), np.array([True, False]), 10, n_boot=50, seed=0)
    assert got["truncated"]["metrics"]["mrr"]["value"] == 0.0
    assert got["truncated"]["metrics"]["mean_rank"]["value"] == 11.0


def test_split_metrics_with_an_empty_part() -> None:
    got = split_metrics(np.array([3, 5]), np.array([False, False]), 10, n_boot=50, seed=0)
    assert got["truncated"] == {"queries": 0, "metrics": None}
    assert got["untruncated"]["metrics"]["mrr"]["value"] == pytest.approx((1 / 3 + 1 / 5) / 2)
    with pytest.raises(ValueError):
        split_metrics(np.array([1, 2]), np.array([True]), 10, n_boot=50, seed=0)


def point(budget: int, mrr: float, low: float = 0.0, high: float = 1.0) -> dict:
    return {"budget": budget, "mrr": mrr, "low": low, "high": high}


def test_effective_budget_by_hand() -> None:
    # full length (77): MRR 0.22 in [0.19, 0.25]; 16 is below 0.19, 32 is the first inside
    points = [point(8, 0.10), point(16, 0.18), point(32, 0.21), point(48, 0.23)]
    assert effective_budget([*points, point(77, 0.22, 0.19, 0.25)]) == 32
    # exactly at the lower end counts as within
    assert effective_budget([point(8, 0.19), point(77, 0.22, 0.19, 0.25)]) == 8
    # above the interval has lost nothing: within
    assert effective_budget([point(8, 0.30), point(77, 0.22, 0.19, 0.25)]) == 8
    # the smallest qualifying budget, even when a larger one dips below
    assert effective_budget([point(8, 0.2), point(16, 0.1), point(77, 0.22, 0.19, 0.25)]) == 8
    # nothing shorter qualifies: the full length itself
    assert effective_budget([point(8, 0.01), point(64, 0.05, 0.04, 0.06)]) == 64
    with pytest.raises(ValueError):
        effective_budget([point(32, 0.2), point(8, 0.2)])
    with pytest.raises(ValueError):
        effective_budget([])


def test_every_budget_list_is_cut_consistently() -> None:
    """Each model's budget list is a function of (budgets, context) only: two orders of
    the same list give the same budgets."""
    for perm in itertools.permutations([8, 16, 77, 32]):
        assert model_budgets(list(perm), 64) == [8, 16, 32, 64]
