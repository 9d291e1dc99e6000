"""Reference features of the tiny LAVIS BLIP-2, computed independently of the worker's
feature code: run by .venv-lavis/bin/python from tests/test_models_lavis.py.

The model object is built by the worker's loader (loading is not what is under test);
the features are computed here the long way, through the model's submodules, from LAVIS'
own processors applied one image and one text at a time, as the thesis code did.

Usage: lavis_reference.py TINY_DIR OUT.npz IMAGE... -- TEXT...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kisbench" / "models"))
import lavis_worker  # noqa: E402


def main() -> None:
    tiny, out, *rest = sys.argv[1:]
    split = rest.index("--")
    paths, texts = rest[:split], rest[split + 1 :]
    loaded = lavis_worker.Blip2Lavis(
        {
            "model_type": "pretrain_vitL",
            "mode": "thesis",
            "device": "cpu",
            "precision": "fp32",
            "local_dir": tiny,
        }
    )
    model = loaded.model
    from lavis.processors.blip_processors import BlipCaptionProcessor, BlipImageEvalProcessor

    vis = BlipImageEvalProcessor(image_size=224)
    cap = BlipCaptionProcessor()
    pixels, img_q = [], []
    with torch.no_grad():
        for p in paths:
            x = vis(Image.open(p).convert("RGB")).unsqueeze(0)
            pixels.append(x[0].numpy())
            frozen = model.ln_vision(model.visual_encoder(x)).float()
            q = model.Qformer.bert(
                query_embeds=model.query_tokens.expand(1, -1, -1),
                encoder_hidden_states=frozen,
                encoder_attention_mask=torch.ones(frozen.shape[:-1], dtype=torch.long),
                return_dict=True,
            ).last_hidden_state
            img_q.append(q[0])
        img_q = torch.stack(img_q)  # (N, 32, hidden)
        thesis_txt, itc_txt = [], []
        for t in texts:
            c = cap(t)
            tok = model.tokenizer([c], return_tensors="pt", padding=True)
            h = model.Qformer.bert(
                tok.input_ids, attention_mask=tok.attention_mask
            ).last_hidden_state
            thesis_txt.append(h[0, 0])
            tok = model.tokenizer(
                [c], return_tensors="pt", padding="max_length", truncation=True, max_length=35
            )
            h = model.Qformer.bert(
                tok.input_ids, attention_mask=tok.attention_mask
            ).last_hidden_state
            itc_txt.append(model.text_proj(h[0, 0]))
        np.savez(
            out,
            pixels=np.stack(pixels),
            thesis_images=F.normalize(img_q[:, 0, :], dim=-1).numpy(),
            itc_images=F.normalize(model.vision_proj(img_q), dim=-1).numpy(),
            thesis_texts=F.normalize(torch.stack(thesis_txt), dim=-1).numpy(),
            itc_texts=F.normalize(torch.stack(itc_txt), dim=-1).numpy(),
        )


if __name__ == "__main__":
    main()
