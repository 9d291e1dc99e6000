"""BLIP-2 through LAVIS (``blip2_feature_extractor`` / ``pretrain_vitL``), the thesis' model.

Run by the LAVIS virtualenv's Python (``.venv-lavis/bin/python``), never imported by the
main environment: LAVIS needs transformers 4.26 and timm 0.4, which cannot live beside
open_clip 3 and transformers 5. It imports nothing from kisbench, so that the two
environments share no code that could drift.

Protocol (the adapter in kisbench/models/blip2_lavis.py is the other end): one JSON object
per line on stdin, one answer per line on this process's original stdout; everything that
LAVIS prints goes to stderr. Arrays travel as ``.npy`` files (no pickle):

- start: ``serve CONFIG_JSON`` -> ``{"ready": true, "info": {...}}`` or ``{"error": ...}``
- ``{"op": "images", "path": in.npy, "out": out.npy}``: pixels (B, 3, H, W) float32 ->
  embeddings, L2-normalised: ``thesis`` (B, 768), ``itc`` (B, 32, 256)
- ``{"op": "texts", "texts": [...], "out": out.npy}`` -> ``thesis`` (T, 768), ``itc`` (T, 256)
- ``{"op": "truncated", "texts": [...]}`` -> ``{"truncated": [bool, ...]}``
- ``{"op": "metadata"}`` -> ``{"metadata": {...}}``: tokenizer, parameters, image-encoder
  GFLOPs of one image, embedding size (kisbench/models/metadata.py counts the same way)
- ``{"op": "texts", ..., "max_tokens": n}``: each text cut to n tokens first (a budget)
- ``{"op": "token_counts", "texts": [...]}`` -> ``{"token_counts": [int, ...]}``; the ready
  answer's ``info`` holds ``context_tokens``
- end of stdin: the worker exits

Modes: ``thesis`` takes exactly the features the thesis code took: the unprojected first
Q-Former query output for an image (``extract_features(...).image_embeds[:, 0, :]``) and
the unprojected text CLS (``text_embeds[:, 0, :]``). ``itc`` takes the projected
image-text-contrastive features BLIP-2 was trained to compare: all 32 projected query
vectors of an image (scored by the best one) and the projected text CLS, with texts cut at
35 tokens as LAVIS' own retrieval evaluation does.

A tiny model for tests (``make-tiny DIR``): random weights at toy size, built by LAVIS' own
builder from the real ``pretrain_vitL`` config, with a folder named ``bert-base-uncased``
in DIR (LAVIS loads that name; a local folder of that name wins over the hub) and a small
LAVIS VisionTransformer in place of the CLIP ViT-L; loaded by ``serve`` through LAVIS'
own checkpoint loader, as the real weights are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

MODEL = "blip2_feature_extractor"
ITC_TEXT_TOKENS = 35  # LAVIS' retrieval evaluation (blip2.compute_sim_matrix)
TINY_VISION = {"patch_size": 32, "width": 32, "layers": 3, "heads": 2}
TINY_CHECKPOINT = "blip2_tiny.pth"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _config(model_type: str) -> tuple[Any, Any]:
    import lavis.models  # noqa: F401 - registers the model classes
    from lavis.common.registry import registry
    from omegaconf import OmegaConf

    model_cls = registry.get_model_class(MODEL)
    return model_cls, OmegaConf.load(model_cls.default_config_path(model_type))


def _use_tiny_vision(folder: str) -> None:
    """Replace LAVIS' CLIP ViT-L builder (which downloads 1.7 GB) by a small LAVIS
    VisionTransformer of the same class."""
    from lavis.models.blip2_models import blip2
    from lavis.models.clip_vit import VisionTransformer

    with open(os.path.join(folder, "vision.json"), encoding="utf-8") as f:
        vision = json.load(f)

    def create_tiny_vit(
        img_size: int = 224, use_checkpoint: bool = False, precision: str = "fp16"
    ) -> Any:
        return VisionTransformer(
            input_resolution=img_size,
            patch_size=vision["patch_size"],
            width=vision["width"],
            layers=vision["layers"],
            heads=vision["heads"],
            use_grad_checkpointing=False,
        )

    blip2.create_clip_vit_L = create_tiny_vit


class Blip2Lavis:
    def __init__(self, config: dict) -> None:
        from lavis.models import load_preprocess

        self.mode = config["mode"]
        if self.mode not in ("thesis", "itc"):
            raise ValueError(f"mode must be 'thesis' or 'itc', not {self.mode!r}")
        self.device = torch.device(config["device"])
        self.dtype = DTYPES[config["precision"]]
        tiny = config.get("local_dir")
        model_cls, cfg = _config(config["model_type"])
        if tiny:
            tiny = os.path.abspath(tiny)
            os.chdir(tiny)  # LAVIS loads "bert-base-uncased" by name: this folder's wins
            _use_tiny_vision(tiny)
            cfg.model.pretrained = os.path.join(tiny, TINY_CHECKPOINT)
        # What lavis.models.load_model_and_preprocess does, with our precision instead of
        # its fixed choice (fp16 ViT under autocast on a GPU, fp32 on a CPU).
        model = model_cls.from_config(cfg.model).eval().float()
        vis, txt = load_preprocess(cfg.preprocess)
        if self.dtype != torch.float32:  # the ViT only: the Q-Former stays fp32, as in LAVIS
            _lower_precision(model.visual_encoder, self.dtype)
        enabled = self.dtype != torch.float32
        model.maybe_autocast = lambda dtype=None: torch.autocast(
            self.device.type, dtype=self.dtype, enabled=enabled
        )
        self.model = model.to(self.device)
        self.image_eval = vis["eval"]
        self.text_eval = txt["eval"]
        # the same caption cleaning without the word limit, to tell what the limit cut
        self.text_uncut = type(self.text_eval)(prompt=self.text_eval.prompt, max_words=10**9)
        self.info = {
            "lavis_model": f"{MODEL}/{config['model_type']}",
            "mode": self.mode,
            "image_size": int(cfg.preprocess.vis_processor.eval.image_size),
            "mean": list(self.image_eval.normalize.mean),
            "std": list(self.image_eval.normalize.std),
            "max_words": int(self.text_eval.max_words),
            "text_tokens": ITC_TEXT_TOKENS if self.mode == "itc" else None,
            "queries": int(model.query_tokens.shape[1]),
            "context_tokens": self.context_tokens(),
            # BLIP-2's ITC divides cosines by its learned `temp`; the thesis' features have none
            "logit_scale": 1.0 / model.temp.detach().item() if self.mode == "itc" else None,
            "libraries": _versions(),
        }

    @torch.inference_mode()
    def images(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(pixels).to(self.device)
        out = self.model.extract_features({"image": x}, mode="image")
        if self.mode == "thesis":
            return F.normalize(out.image_embeds[:, 0, :].float(), dim=-1).cpu().numpy()
        return F.normalize(out.image_embeds_proj.float(), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def texts(self, texts: list[str], max_tokens: int | None = None) -> np.ndarray:
        """The texts' embeddings; ``max_tokens``: cut each (after the caption cleaning) to
        that many tokens, [CLS] first and [SEP] last (the tokenizer's own truncation)."""
        captions = [self.text_eval(t) for t in texts]
        if self.mode == "thesis" and max_tokens is None:
            out = self.model.extract_features({"text_input": captions}, mode="text")
            return F.normalize(out.text_embeds[:, 0, :].float(), dim=-1).cpu().numpy()
        if self.mode == "thesis":
            # extract_features' text path (padding to the longest, no cut), with the cut
            tokens = self.model.tokenizer(
                captions,
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(self.device)
            out = self.model.Qformer.bert(
                tokens.input_ids, attention_mask=tokens.attention_mask, return_dict=True
            )
            return F.normalize(out.last_hidden_state[:, 0, :].float(), dim=-1).cpu().numpy()
        tokens = self.model.tokenizer(
            captions,
            padding="max_length",  # masked out: a shorter budget pads less, same result
            truncation=True,
            max_length=max_tokens or ITC_TEXT_TOKENS,
            return_tensors="pt",
        ).to(self.device)
        cls = self.model.forward_text(tokens)
        return F.normalize(self.model.text_proj(cls).float(), dim=-1).cpu().numpy()

    def context_tokens(self) -> int:
        """itc: the 35-token cut; thesis: the text BERT's positions (the caption cleaning's
        word limit comes first)."""
        if self.mode == "itc":
            return ITC_TEXT_TOKENS
        return int(self.model.Qformer.config.max_position_embeddings)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens of each cleaned caption before any cut (word limit or token limit),
        [CLS] and [SEP] included."""
        return [len(self.model.tokenizer(self.text_uncut(t))["input_ids"]) for t in texts]

    def truncated(self, texts: list[str]) -> list[bool]:
        """Cut by the caption processor's word limit (both modes), or, in ``itc`` mode, by
        the 35-token limit. (``thesis`` mode tokenizes without a token limit, as LAVIS'
        ``extract_features`` does.)"""
        out = []
        for t in texts:
            cut = self.text_eval(t) != self.text_uncut(t)
            if self.mode == "itc" and not cut:
                n = len(self.model.tokenizer(self.text_eval(t))["input_ids"])
                cut = n > ITC_TEXT_TOKENS
            out.append(cut)
        return out

    def metadata(self) -> dict:
        """What kisbench/models/metadata.py measures in the main environment, measured here
        the same way: one image of the input size through ``images``, its matrix products,
        convolutions and attention counted by ``FlopCounterMode`` (which counts 2 per
        multiply-add: halved, so one multiply-add = one FLOP)."""
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.utils.flop_counter import FlopCounterMode

        size = self.info["image_size"]
        pixels = np.zeros((1, 3, size, size), dtype=np.float32)
        named = dict(self.model.named_parameters())
        trainable = [w for w in named.values() if w.requires_grad]
        fast = torch.backends.mha.get_fastpath_enabled()
        # Fused attention kernels are invisible to the counter; the counter's module tracker
        # cannot hook tensors that require gradients under inference mode.
        torch.backends.mha.set_fastpath_enabled(False)
        for w in trainable:
            w.requires_grad_(False)
        try:
            with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
                out = self.images(pixels)
        finally:
            torch.backends.mha.set_fastpath_enabled(fast)
            for w in trainable:
                w.requires_grad_(True)
        # The thesis' features are the unprojected Q-Former outputs: no projections then.
        image_parts = ["visual_encoder.", "ln_vision.", "query_tokens", "Qformer."]
        text_parts = ["Qformer."]
        if self.mode == "itc":
            image_parts.append("vision_proj.")
            text_parts.append("text_proj.")
        image = {k: v for k, v in named.items() if k.startswith(tuple(image_parts))}
        text = {k: v for k, v in named.items() if k.startswith(tuple(text_parts))}

        def count(tensors: dict) -> int:
            return sum({id(t): t.numel() for t in tensors.values()}.values())

        tokenizer = self.model.tokenizer
        return {
            "context_length": self.context_tokens(),
            "tokenizer": f"{type(tokenizer).__name__} {tokenizer.name_or_path}",
            "image_size": [size, size],
            "embedding_dim": int(out.shape[-1]),
            "vectors_per_image": int(out.shape[1]) if out.ndim == 3 else 1,
            "parameters": {
                "image": count(image),
                "text": count(text),
                "shared": count({k: v for k, v in image.items() if k in text}),
                "total": count(named),
            },
            "image_gflops": counter.get_total_flops() / 2 / 1e9,
        }


def _lower_precision(vit: torch.nn.Module, dtype: torch.dtype) -> None:
    """LAVIS' ``convert_weights_to_fp16`` for any dtype: convolution and linear weights
    only; LAVIS' LayerNorms compute in fp32 and expect fp32 parameters."""
    for module in vit.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("salesforce-lavis", "torch", "transformers", "timm")}


def serve(config: dict) -> None:
    # Answers go to the original stdout; anything else printed goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(obj: dict) -> None:
        channel.write(json.dumps(obj) + "\n")

    try:
        model = Blip2Lavis(config)
    except Exception:  # noqa: BLE001 - reported to the adapter, which raises it
        answer({"error": traceback.format_exc()})
        return
    answer({"ready": True, "info": model.info})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "images":
                pixels = np.load(request["path"], allow_pickle=False)
                np.save(request["out"], model.images(pixels))
                answer({"ok": True})
            elif request["op"] == "texts":
                np.save(request["out"], model.texts(request["texts"], request.get("max_tokens")))
                answer({"ok": True})
            elif request["op"] == "token_counts":
                answer({"token_counts": model.token_counts(request["texts"])})
            elif request["op"] == "metadata":
                answer({"metadata": model.metadata()})
            elif request["op"] == "truncated":
                answer({"truncated": model.truncated(request["texts"])})
            else:
                answer({"error": f"unknown op {request['op']!r}"})
        except Exception:  # noqa: BLE001 - reported to the adapter, which raises it
            answer({"error": traceback.format_exc()})


def make_tiny(folder: str, seed: int, vocab: list[str]) -> None:
    """Write a tiny random-weight BLIP-2 (pretrain_vitL layout) into ``folder``."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = os.path.abspath(folder)
    bert = os.path.join(folder, "bert-base-uncased")
    os.makedirs(bert, exist_ok=True)
    with open(os.path.join(bert, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{t}\n" for t in vocab))
    BertTokenizer(os.path.join(bert, "vocab.txt"), do_lower_case=True).save_pretrained(bert)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertForMaskedLM(config).save_pretrained(bert)
    with open(os.path.join(folder, "vision.json"), "w", encoding="utf-8") as f:
        json.dump(TINY_VISION, f, indent=2)
    # Build through LAVIS' own builder, loading an empty checkpoint, then save the random
    # weights in the real checkpoint's format ({"model": state_dict}).
    checkpoint = os.path.join(folder, TINY_CHECKPOINT)
    torch.save({"model": {}}, checkpoint)
    model_cls, cfg = _config("pretrain_vitL")
    os.chdir(folder)
    _use_tiny_vision(folder)
    cfg.model.pretrained = checkpoint
    torch.manual_seed(seed)
    model = model_cls.from_config(cfg.model).float()
    torch.save({"model": model.state_dict()}, checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="answer embedding requests on stdin")
    s.add_argument("config", help="JSON: model_type, mode, device, precision, local_dir")
    t = sub.add_parser("make-tiny", help="write a tiny random-weight model")
    t.add_argument("folder")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--vocab", required=True, help="WordPiece vocabulary file")
    args = parser.parse_args()
    if args.command == "serve":
        serve(json.loads(args.config))
    else:
        with open(args.vocab, encoding="utf-8") as f:
            vocab = f.read().splitlines()
        with contextlib.redirect_stdout(sys.stderr):
            make_tiny(args.folder, args.seed, vocab)


if __name__ == "__main__":
    main()
