"""The queries cut to token budgets (the query-length study, docs/evaluation.md#query-length).

Text only: a labelset's queries are embedded once per budget by the model's own tokenizer
and text path (``EmbeddingModel.encode_texts_cut``); the images are not embedded again.
Each budget is one embedding set of the usual layout, under
``data/budgets/<model>/<collection>/<labelset>/<budget>/`` (``kisbench.layout.budgets_dir``),
with the queries' token counts in its ``meta.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from kisbench.config.length import model_budgets
from kisbench.models.base import EmbeddingModel


def embed_cut(
    model: EmbeddingModel,
    texts: Sequence[str],
    budgets: Sequence[int],
    batch_size: int,
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """The texts' embeddings at each budget (``model_budgets``), in batches of
    ``batch_size`` as the plain query path embeds them."""
    if not texts:
        raise ValueError("no texts to embed")
    out: dict[int, np.ndarray] = {}
    steps = list(model_budgets(budgets, model.context_tokens()))
    for budget in tqdm(steps, desc=f"{model.spec.key} budgets", disable=not progress):
        parts = [
            model.encode_texts_cut(texts[i : i + batch_size], budget)
            for i in range(0, len(texts), batch_size)
        ]
        out[budget] = np.concatenate(parts)
    return out
