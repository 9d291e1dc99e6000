"""Model metadata (kisbench/models/metadata.py, ``EmbeddingModel.metadata``), the models
file and the Pareto figure (kisbench/report/models.py), each against numbers worked out
independently: parameters summed from the weight files, a tiny ViT's multiply-adds counted
by hand, embedding sizes from the configs, the Pareto front by its brute-force definition."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from kisbench.models import load_model
from kisbench.models import metadata as measure
from kisbench.report import models as report_models
from kisbench.report.figures import save

pytest_plugins = ["tests.models_fixtures"]  # the tiny_root fixture


# Tensors a checkpoint holds that are no learned parameters (batch-norm statistics)
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _tensors(path: Path) -> dict[str, int]:
    """name -> element count of every learned tensor in a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        return {
            k: math.prod(f.get_slice(k).get_shape())
            for k in f.keys()  # noqa: SIM118
            if not k.endswith(BUFFERS)
        }


def _vit_macs(image: int, patch: int, width: int, layers: int, mlp: int, embed: int) -> int:
    """Multiply-adds of a CLIP ViT image tower on one image, by hand: the patch convolution,
    per layer the qkv projection, q @ k^T and attn @ v (tokens^2 x width each), the output
    projection and the two MLP layers, then the class token's projection."""
    grid = (image // patch) ** 2
    tokens = grid + 1
    conv = grid * width * 3 * patch * patch
    layer = (
        tokens * width * 3 * width
        + 2 * tokens * tokens * width
        + tokens * width * width
        + 2 * tokens * width * mlp
    )
    return conv + layers * layer + width * embed


def test_counting_convention_by_hand() -> None:
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, bias=False)  # 10x10 -> 8x8, 27 per output
    gflops, out = measure.count_gflops(lambda: conv(torch.zeros(1, 3, 10, 10)), conv.parameters())
    assert out.shape == (1, 8, 8, 8)
    assert gflops * 1e9 == pytest.approx(8 * 8 * 8 * 27)
    assert all(p.requires_grad for p in conv.parameters()), "gradients are given back"
    # nn.MultiheadAttention in inference mode takes its fused fast path, which a plain
    # FlopCounterMode does not see: in projection 3*T*E*E, two T*T*E products, out T*E*E.
    mha = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()
    x = torch.zeros(1, 5, 16)

    def attend() -> torch.Tensor:
        with torch.inference_mode():
            return mha(x, x, x, need_weights=False)[0]

    gflops, _ = measure.count_gflops(attend, mha.parameters())
    assert gflops * 1e9 == pytest.approx(3 * 5 * 16 * 16 + 2 * 5 * 5 * 16 + 5 * 16 * 16)


def test_tiny_clip_metadata_by_hand(tiny_root: Path) -> None:
    folder = tiny_root / "tiny_clip"
    cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    vision = cfg["vision_cfg"]
    model = load_model(
        "tiny_clip",
        {"family": "open_clip", "model": f"local-dir:{folder}"},
        device="cpu",
        precision="fp32",
    )
    meta = model.provenance()["metadata"]
    assert meta == model.metadata()  # what meta.json gets is the method's record
    width = vision["width"]
    macs = _vit_macs(
        vision["image_size"], vision["patch_size"], width, vision["layers"], 4 * width,
        cfg["embed_dim"],
    )  # fmt: skip
    assert meta["image_gflops"] == pytest.approx(macs / 1e9, abs=1e-6)
    assert meta["embedding_dim"] == cfg["embed_dim"] and meta["vectors_per_image"] == 1
    assert meta["image_size"] == [vision["image_size"]] * 2
    assert meta["resize"] == "shortest" and meta["interpolation"] == "bicubic"
    assert meta["context_length"] == cfg["text_cfg"]["context_length"]
    assert meta["tokenizer"] == "SimpleTokenizer"
    sizes = _tensors(folder / "open_clip_model.safetensors")
    image = sum(n for k, n in sizes.items() if k.startswith("visual."))
    scalars = sum(n for k, n in sizes.items() if k in ("logit_scale", "logit_bias"))
    assert meta["parameters"] == {
        "image": image,
        "text": sum(sizes.values()) - image - scalars,
        "shared": 0,
        "total": sum(sizes.values()),
    }


def test_gflops_grow_with_resolution(tiny_root: Path) -> None:
    """The same tiny ViT at twice the resolution: four times the patches, so more than four
    times the multiply-adds (attention is quadratic in the tokens), and exactly the
    hand count at both sizes."""
    import open_clip

    cfg = json.loads((tiny_root / "tiny_clip" / "open_clip_config.json").read_text())
    vision = cfg["model_cfg"]["vision_cfg"]
    counts = []
    for size in (vision["image_size"], 2 * vision["image_size"]):
        tower = open_clip.model._build_vision_tower(  # the tiny tower, at `size`
            cfg["model_cfg"]["embed_dim"], {**vision, "image_size": size}
        ).eval()
        gflops, _ = measure.count_gflops(
            lambda t=tower, s=size: t(torch.zeros(1, 3, s, s)), tower.parameters()
        )
        w = vision["width"]
        hand = _vit_macs(
            size, vision["patch_size"], w, vision["layers"], 4 * w, cfg["model_cfg"]["embed_dim"]
        )
        assert gflops * 1e9 == pytest.approx(hand)
        counts.append(gflops)
    assert counts[1] > 4 * counts[0]


OPEN_CLIP_TINY = ["tiny_siglip", "tiny_siglip2", "tiny_pe_core", "tiny_mobileclip2"]


@pytest.mark.parametrize("key", [*OPEN_CLIP_TINY, "tiny_align", "tiny_blip2_hf"])
def test_other_families_against_their_configs(tiny_root: Path, key: str) -> None:
    folder = tiny_root / key
    entry = {
        "tiny_align": {"family": "align", "source": str(folder)},
        "tiny_blip2_hf": {"family": "blip2_hf", "source": str(folder), "context_length": 35},
    }.get(key, {"family": "open_clip", "model": f"local-dir:{folder}"})
    model = load_model(key, entry, device="cpu", precision="fp32")
    meta = model.metadata()
    assert meta["image_gflops"] > 0 and meta["flops"] == measure.FLOPS_CONVENTION
    p = meta["parameters"]
    if key in OPEN_CLIP_TINY:
        cfg = json.loads((folder / "open_clip_config.json").read_text())
        assert meta["embedding_dim"] == cfg["model_cfg"]["embed_dim"]
        assert meta["context_length"] == cfg["model_cfg"]["text_cfg"]["context_length"]
        size = cfg["preprocess_cfg"]["size"]
        assert meta["image_size"] == ([size] * 2 if isinstance(size, int) else list(size))
        assert meta["resize"] == cfg["preprocess_cfg"]["resize_mode"]
        sizes = _tensors(folder / "open_clip_model.safetensors")
        assert p["total"] == sum(sizes.values())
        assert p["image"] == sum(n for k, n in sizes.items() if k.startswith("visual."))
        return
    cfg = json.loads((folder / "config.json").read_text())
    sizes = _tensors(folder / "model.safetensors")
    if key == "tiny_align":
        assert meta["embedding_dim"] == cfg["projection_dim"]
        assert meta["context_length"] == cfg["text_config"]["max_position_embeddings"]
        assert meta["image_size"] == [cfg["vision_config"]["image_size"]] * 2
        assert meta["tokenizer"].startswith("BertTokenizer")
        assert p["total"] == sum(sizes.values())
        assert p["image"] == sum(n for k, n in sizes.items() if k.startswith("vision_model."))
        assert p["shared"] == 0 and p["image"] + p["text"] == p["total"] - 1  # temperature
    else:
        assert meta["embedding_dim"] == cfg["image_text_hidden_size"]
        assert meta["vectors_per_image"] == cfg["num_query_tokens"]
        assert meta["context_length"] == 35
        # the checkpoint less its image-text matching head, which retrieval never runs
        used = {k: n for k, n in sizes.items() if not k.startswith("itm_head.")}
        assert p["total"] == sum(used.values())
        qformer = sum(n for k, n in sizes.items() if k.startswith("qformer."))
        assert p["shared"] == qformer
        assert p["image"] + p["text"] - p["shared"] == p["total"]


def _dominated(i: int, cost: list[float], value: list[float]) -> bool:
    return any(
        cost[j] <= cost[i] and value[j] >= value[i] and (cost[j] < cost[i] or value[j] > value[i])
        for j in range(len(cost))
        if j != i and not (math.isnan(cost[j]) or math.isnan(value[j]))
    )


def test_pareto_front_is_the_brute_force_front() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(1, 12))
        # small integer grids: many ties in cost, in value and in both
        cost = [float(c) for c in rng.integers(0, 5, n)]
        value = [float(v) for v in rng.integers(0, 5, n)]
        if trial % 5 == 0:
            cost[int(rng.integers(0, n))] = math.nan
        want = [
            not (math.isnan(cost[i]) or math.isnan(value[i])) and not _dominated(i, cost, value)
            for i in range(n)
        ]
        assert report_models.pareto_front(cost, value) == want, (cost, value)


def test_pareto_front_by_hand() -> None:
    # (cost, value): b dominates a; c and d are equal (both on it); e is costlier and worse
    cost = [2.0, 1.0, 3.0, 3.0, 4.0]
    value = [0.1, 0.2, 0.5, 0.5, 0.4]
    assert report_models.pareto_front(cost, value) == [False, True, True, True, False]
    # images/s: more is better, passed negated; the fastest is always on the front
    speed = [100.0, 50.0, 10.0]
    assert report_models.pareto_front([-s for s in speed], [0.1, 0.3, 0.2]) == [True, True, False]


def test_label_column_keeps_its_gap() -> None:
    rng = np.random.default_rng(1)
    ys = rng.uniform(0, 1, 30)
    pos = report_models._label_positions(ys, 0.03)
    order = np.argsort(ys, kind="stable")
    assert np.all(np.diff(pos[order]) >= 0.03 - 1e-12), "labels keep the points' order and gap"
    assert pos.max() <= 1 + 1e-12 and pos.min() >= 0 - 1e-12  # 30 x 0.03 fits in [0, 1]


def _records(n: int) -> tuple[dict, dict, dict]:
    """A leaderboard, details and model records of ``n`` fake models, one without cost."""
    rng = np.random.default_rng(2)
    board = {"metric": "mrr", "queries": 100, "models": {}}
    details, records = {}, {}
    for i in range(n):
        key = f"fake_model_number_{i:02d}"
        g = float(np.exp(rng.uniform(0, 7)))
        v = float(0.1 + 0.04 * np.log(g) + rng.normal(0, 0.03))
        board["models"][key] = {"mrr": v}
        details[key] = {"mrr": {"value": v, "low": v - 0.02, "high": v + 0.03}}
        records[key] = {
            "metadata": {"image_gflops": None if i == 3 else g},
            "speed": {"demo": {"images_per_s": 5e4 / g}},
        }
    return board, details, records


def test_pareto_figure_with_many_models(tmp_path: Path) -> None:
    board, details, records = _records(24)
    written = report_models.draw(
        {"demo": {"short": board}}, {"demo": {"short": details}}, records, tmp_path
    )
    path = written["pareto/demo-short.png"]
    assert path.is_file() and path.stat().st_size > 20_000
    points = report_models.graph_points(board, details, records, "demo")
    assert len(points) == 24 and points[3].gflops is None
    fig = report_models.pareto_figure(points, "MRR", "t")
    assert len(fig.axes) == 2
    # every model is named in the panel that has its cost: 23 with GFLOPs, 24 with speed
    names = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert len([t for t in names[0] if t.startswith("fake")]) == 23
    assert len([t for t in names[1] if t.startswith("fake")]) == 24
    save(fig, tmp_path / "again.png")


def test_models_file_has_every_model(tmp_path: Path) -> None:
    models = ["with_card", "no_card", "not_ranked"]
    meta = {"image_gflops": 1.5, "parameters": {"image": 10, "text": 5, "shared": 0, "total": 16}}
    for key in models[:2]:
        folder = tmp_path / key / "demo"
        folder.mkdir(parents=True)
        facts = {"metadata": meta, "images_per_s": 12.5, "device": "cpu", "dtype": "fp32"}
        (folder / "info.json").write_text(json.dumps({"images": 3, "embedding": facts}))
    entries = {k: {"family": "open_clip", "model": f"x-{k}"} for k in models}
    records = report_models.model_records(
        models, ["demo"], entries, {"with_card": "MIT"}, ranks_root=tmp_path
    )
    assert list(records) == models
    assert [r["licence"] for r in records.values()] == ["MIT", "unknown", "unknown"]
    assert records["no_card"]["speed"]["demo"]["images_per_s"] == 12.5
    assert records["not_ranked"]["metadata"] is None and records["not_ranked"]["speed"] == {}
    path = report_models.write_records(records, tmp_path / "models.json")
    assert set(json.loads(path.read_text())["models"]) == set(models)
    text = report_models.section(records, ["demo"])
    for key in models:
        assert f"| `{key}` |" in text
    assert "12.5 (cpu, fp32)" in text and "`not_ranked`: their embeddings predate it" in text


@pytest.mark.slow
def test_smoke_report_has_models_and_pareto(smoke_run: Path) -> None:
    from tests.test_models_pipeline import EVERY_FAMILY

    models = json.loads((smoke_run / "metrics" / "models.json").read_text())["models"]
    assert list(models) == EVERY_FAMILY["run"]["models"]
    for key, record in models.items():
        meta = json.loads(
            (smoke_run / "data" / "features" / key / "demo" / "meta.json").read_text()
        )
        assert record["metadata"] == meta["metadata"] and record["metadata"]["image_gflops"] > 0
        assert record["speed"]["demo"]["images_per_s"] == meta["images_per_s"]
    report = (smoke_run / "reports" / "report.md").read_text()
    assert "## Models" in report and "pareto/demo-short.png" in report
    assert (smoke_run / "plots" / "figures" / "pareto" / "demo-short.png").is_file()
