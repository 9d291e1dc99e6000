"""Multi-sentence strategies and temporal aggregations on examples worked out by hand.

The generated keyframe collection: video A (frames a0..a3, positions 0, 10, 20, 30), video
B (b0..b2, ISO timestamps) and an image z that frames.csv does not list (a video of its
own). The images are stored in a shuffled order, so the frame order must come from the file.
Two sub-queries, q1 = e1 and q2 = e2, so an image (x, y, z) scores cos1 = x, cos2 = y:

    frame  a0   a1   a2       a3   b0        b1    b2        z
    cos1   1    0    0.6      0    0.8       0     0         -0.6
    cos2   0    1    0.8      0    0         0     0.6       0
"""

import numpy as np
import pytest

from kisbench.config import parse
from kisbench.config import sentences as config_sentences
from kisbench.data.frames import read_frames
from kisbench.data.sentences import query_parts, split_sentences, split_temporal
from kisbench.errors import InputError
from kisbench.evaluation import sentences
from kisbench.evaluation.evaluate import RankSet
from kisbench.evaluation.sentences import (
    combine,
    frame_sequence,
    mean_embedding,
    rank_parts,
    somhunter_scores,
    viret_scores,
)
from kisbench.evaluation.sentences_compare import compare_strategies

VECTORS = {
    "a0": (1, 0, 0),
    "a1": (0, 1, 0),
    "a2": (0.6, 0.8, 0),
    "a3": (0, 0, 1),
    "b0": (0.8, 0, 0.6),
    "b1": (0, 0, -1),
    "b2": (0, 0.6, 0.8),
    "z": (-0.6, 0, 0.8),
}
STORED = ["b1", "a2", "z", "a0", "b2", "a3", "b0", "a1"]  # the collection's (shuffled) order
FRAMES = """\
image_id,video,position
a3,A,30
a0,A,0
a2,A,20
a1,A,10
b0,B,0
b1,B,1
b2,B,2
"""
FRAMES_TS = """\
image_id,day,timestamp
b2,B,2020-01-02T08:00:02
b0,B,2020-01-02T08:00:00
b1,B,2020-01-02T08:00:01
a0,A,2020-01-01T09:00:00
a1,A,2020-01-01T09:01:00
a2,A,2020-01-01T09:02:00
a3,A,2020-01-01T09:03:00
"""


@pytest.fixture
def frames(tmp_path):
    path = tmp_path / "frames.csv"
    path.write_text(FRAMES, encoding="utf-8")
    return read_frames(path)


def images():
    return np.array([VECTORS[i] for i in STORED], dtype=np.float32)


def cos_rows():
    v = images()
    return np.stack([v[:, 0], v[:, 1]])  # (2 sub-queries, 8 images)


def by_id(scores):
    return {i: float(s) for i, s in zip(STORED, scores, strict=True)}


# ---- sentence splitting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A red car. A blue sky.", ["A red car.", "A blue sky."]),
        ("Dr. Smith stands by a tree. He waves.", ["Dr. Smith stands by a tree.", "He waves."]),
        ("Tools, e.g. a hammer and a saw. They lie on a bench.",
         ["Tools, e.g. a hammer and a saw.", "They lie on a bench."]),
        ("A flag of the U.S. Navy on a ship.", ["A flag of the U.S. Navy on a ship."]),
        ("A pole 3.5 m tall. It is grey.", ["A pole 3.5 m tall.", "It is grey."]),
        ("A diver waits... then a turtle appears.", ["A diver waits... then a turtle appears."]),
        ("A diver waits... A turtle appears.", ["A diver waits...", "A turtle appears."]),
        ("A sign says \"Stop.\" Behind it a road.", ["A sign says \"Stop.\"", "Behind it a road."]),
        ("\"Look!\" says a poster. 2 men walk by.", ["\"Look!\" says a poster.", "2 men walk by."]),
        ("A statue of J. S. Bach. It is bronze!", ["A statue of J. S. Bach.", "It is bronze!"]),
        ("Is it a bird? No, a plane.", ["Is it a bird?", "No, a plane."]),
        ("Mt. Fuji at dawn", ["Mt. Fuji at dawn"]),
        ("   ", []),
    ],
)  # fmt: skip
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_temporal_labels():
    assert split_temporal("a diver above coral >> a turtle swims away") == [
        "a diver above coral",
        "a turtle swims away",
    ]
    assert split_temporal("a>>b >>c") == ["a", "b", "c"]
    assert query_parts("A dog. A cat.") == (False, ["A dog.", "A cat."])
    assert query_parts("A dog. A cat >> a bird") == (True, ["A dog. A cat", "a bird"])
    for bad in ("a >>", ">> b", "a >> >> b"):
        with pytest.raises(InputError, match="two or more non-empty sub-queries"):
            query_parts(bad, "labels/x.csv, query 7")


# ---- frames files ---------------------------------------------------------------------


def test_frame_order_from_positions_and_timestamps(tmp_path, frames):
    ts = tmp_path / "ts.csv"
    ts.write_text(FRAMES_TS, encoding="utf-8")
    for f in (frames, read_frames(ts)):
        order, video = frame_sequence(STORED, f)
        seq = [STORED[i] for i in order]
        # z (unlisted) is a video of its own; A and B in position order
        assert [s for s in seq if s != "z"] == ["a0", "a1", "a2", "a3", "b0", "b1", "b2"]
        groups = {}
        for name, v in zip(seq, video, strict=True):
            groups.setdefault(int(v), []).append(name[0])
        assert sorted(map(tuple, groups.values())) == [("a",) * 4, ("b",) * 3, ("z",)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_id,video\na,1\n", "header must be"),
        ("image_id,video,position\na,A,1\na,A,2\n", "listed twice"),
        ("image_id,video,position\na,A,1\nb,A,1\n", "share video"),
        ("image_id,video,position\na,A,first\n", "is not a number"),
        ("image_id,day,timestamp\na,A,yesterday\n", "not an ISO 8601"),
    ],
)
def test_bad_frames_files(tmp_path, text, message):
    path = tmp_path / "frames.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_frames(path)


# ---- temporal aggregations, worked by hand -------------------------------------------


def test_viret_window_2(frames):
    # plus = cos + 1; segments of 2 frames; product of the best plus per sub-query.
    # A: [a0,a1] 2*2 = 4, [a1,a2] 1.6*2 = 3.2, [a2,a3] 1.6*1.8 = 2.88
    # B: [b0,b1] 1.8*1 = 1.8, [b1,b2] 1*1.6 = 1.6; z alone: 0.4*1
    # a frame: the best segment that holds it
    order, video = frame_sequence(STORED, frames)
    got = by_id(viret_scores(cos_rows(), order, video, window=2))
    want = {"a0": 4, "a1": 4, "a2": 3.2, "a3": 2.88, "b0": 1.8, "b1": 1.8, "b2": 1.6, "z": 0.4}
    assert got == pytest.approx(want)


def test_viret_window_3_and_longer_than_videos(frames):
    order, video = frame_sequence(STORED, frames)
    # A: [a0..a2] 2*2 = 4, [a1..a3] 1.6*2 = 3.2; B (3 frames): one segment 1.8*1.6 = 2.88
    got = by_id(viret_scores(cos_rows(), order, video, window=3))
    want = {"a0": 4, "a1": 4, "a2": 4, "a3": 3.2, "b0": 2.88, "b1": 2.88, "b2": 2.88, "z": 0.4}
    assert got == pytest.approx(want)
    # a window longer than every video: one segment per video
    got = by_id(viret_scores(cos_rows(), order, video, window=10))
    assert got == pytest.approx({**dict.fromkeys(["a0", "a1", "a2", "a3"], 4.0),
                                 **dict.fromkeys(["b0", "b1", "b2"], 2.88), "z": 0.4})  # fmt: skip


def test_somhunter_lookahead(frames):
    # t = 1 - cos, divided by its maximum over the frames: sub-query 1's is 1.6 (z),
    # sub-query 2's 1; zeros become 1e-18.
    # t1: a0 1e-18, a1 .625, a2 .25, a3 .625, b0 .125, b1 .625, b2 .625, z 1
    # t2: a0 1, a1 1e-18, a2 .2, a3 1, b0 1, b1 1, b2 .4, z 1
    # s[j] = t1[j] * min(1, t2 of the next `lookahead` frames of j's video)
    order, video = frame_sequence(STORED, frames)
    one = by_id(somhunter_scores(cos_rows(), order, video, lookahead=1))
    want = {"a0": 1e-36, "a1": 0.125, "a2": 0.25, "a3": 0.625,
            "b0": 0.125, "b1": 0.25, "b2": 0.625, "z": 1.0}  # fmt: skip
    assert one == pytest.approx(want, rel=1e-6)
    two = by_id(somhunter_scores(cos_rows(), order, video, lookahead=2))
    # b0 now reaches b2 (t2 .4): .125 * .4 = .05; nothing else changes
    assert two == pytest.approx({**want, "b0": 0.05}, rel=1e-6)


def test_temporal_ranks_through_rank_parts(frames):
    # Queries labelled at a2 and at b0, both "q1 >> q2".
    parts = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    part_of = {"a2": (True, [0, 1]), "b0": (True, [2, 3])}
    kw = dict(strategies=list(sentences.STRATEGIES), frames=frames, lookahead=1)
    tables = rank_parts(images(), STORED, parts, part_of, "temporal",
                        aggregations=["viret", "somhunter"], window=2, **kw)  # fmt: skip
    assert set(tables) == {"viret", "somhunter"}  # no plain query: no strategy table
    ranks = {n: dict(zip(t["query_id"], t["rank"], strict=True)) for n, t in tables.items()}
    # viret, window 2: a2 3.2 behind a0, a1 (4): rank 3; b0 1.8 behind a0..a3 and tied
    # with b1: rank 6 (ties count against the target)
    assert ranks["viret"] == {"a2": 3, "b0": 6}
    # somhunter, look-ahead 1 (lower s is better): a2 .25 behind a0, a1, b0 and tied with
    # b1: rank 5; b0 .125 behind a0, tied with a1: rank 3
    assert ranks["somhunter"] == {"a2": 5, "b0": 3}
    two = rank_parts(images(), STORED, parts, part_of, "temporal",
                     aggregations=["somhunter"], window=2, **{**kw, "lookahead": 2})  # fmt: skip
    assert dict(zip(two["somhunter"]["query_id"], two["somhunter"]["rank"], strict=True)) == {
        "a2": 5,  # a0, a1, b0 (.05) ahead, b1 tied
        "b0": 2,  # only a0 ahead
    }
    top = tables["viret"].set_index("query_id")["top_ids"]
    assert set(top["a2"].split()[:2]) == {"a0", "a1"}
    # no frames file: temporal queries are not ranked
    assert rank_parts(images(), STORED, parts, part_of, "t", aggregations=["viret"],
                      window=2, **{**kw, "frames": None}) == {}  # fmt: skip


# ---- multi-sentence strategies ---------------------------------------------------------


def test_combine_by_hand():
    cos = np.array([[0.5, 0.9, -0.2], [0.1, -0.5, 0.3]])
    assert combine(cos, "score_mean") == pytest.approx([0.3, 0.2, 0.05])
    assert combine(cos, "score_min") == pytest.approx([0.1, -0.5, -0.2])
    # (1 + cos) products: 1.5 * 1.1, 1.9 * 0.5, 0.8 * 1.3
    assert combine(cos, "score_product") == pytest.approx([1.65, 0.95, 1.04])
    # two poor sentences (cos -0.9 each) score low, where a raw product would give +0.81
    neg = np.array([[-0.9], [-0.9]])
    assert combine(neg, "score_product")[0] == pytest.approx(0.01)
    with pytest.raises(ValueError):
        combine(cos, "truncate")


def test_mean_embedding():
    v = mean_embedding(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    assert v == pytest.approx([2**-0.5, 2**-0.5, 0])
    assert mean_embedding(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx([0, 0])


def test_strategy_ranks_by_hand():
    # images u0..u3 in the plane; one query of two sentences e1 and e2
    imgs = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, -0.6]], dtype=np.float32)
    ids = ["u0", "u1", "u2", "u3"]
    parts = np.eye(2, dtype=np.float32)
    # target u3: cos (0.8, -0.6)
    # mean embedding (.707, .707): u0 .707, u1 .707, u2 .99, u3 .141 -> rank 4
    # score_mean: u0 .5, u1 .5, u2 .7, u3 .1 -> 4
    # score_min: u0 0, u1 0, u2 .6, u3 -.6 -> 4
    # score_product: u0 2, u1 2, u2 2.88, u3 1.8 * .4 = .72 -> 4
    # target u0: mean .707 tied with u1, behind u2 -> 3; score_min 0 tied with u1 -> 3;
    # score_product 2, tied with u1, behind u2 -> 3
    tables = rank_parts(
        imgs, ids, np.concatenate([parts, parts]), {"u3": (False, [0, 1]), "u0": (False, [2, 3])},
        "long", strategies=list(sentences.STRATEGIES), aggregations=["viret"], frames=None,
        window=2, lookahead=1,
    )  # fmt: skip
    assert list(tables) == list(sentences.STRATEGIES)
    for name, table in tables.items():
        assert dict(zip(table["query_id"], table["rank"], strict=True)) == {"u3": 4, "u0": 3}, name
    assert tables["score_product"].set_index("query_id")["score"]["u3"] == pytest.approx(0.72)


def test_single_sentence_labels_get_no_strategy_and_mean_ranks_like_score_mean():
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(40, 8)).astype(np.float32)
    imgs /= np.linalg.norm(imgs, axis=1, keepdims=True)
    parts = rng.normal(size=(7, 8)).astype(np.float32)
    parts /= np.linalg.norm(parts, axis=1, keepdims=True)
    ids = [f"i{k}" for k in range(40)]
    kw = dict(aggregations=[], frames=None, window=2, lookahead=1)
    one_each = {"i0": (False, [0]), "i1": (False, [1])}
    assert rank_parts(imgs, ids, parts, one_each, "s", strategies=["mean"], **kw) == {}
    several = {"i0": (False, [0, 1, 2]), "i1": (False, [3]), "i2": (False, [4, 5, 6])}
    t = rank_parts(imgs, ids, parts, several, "l", strategies=["mean", "score_mean"], **kw)
    # one vector per image: the mean of the cosines is the renormalised mean vector's
    # cosine times a positive constant per query, so the two rank alike (brute force here)
    for q, rows in several.items():
        mean_cos = (imgs @ parts[rows[1]].T).mean(axis=1)
        rank = 1 + int(np.sum(mean_cos > mean_cos[int(q[1:])]))
        for name in ("mean", "score_mean"):
            assert t[name].set_index("query_id")["rank"][q] == rank


def test_multi_vector_images_score_their_best_vector():
    # two vectors per image: the part's score is the best of them (as the rank stage)
    imgs = np.array([[[1, 0], [0, 1]], [[0.6, 0.8], [0.6, 0.8]]], dtype=np.float32)
    tables = rank_parts(
        imgs, ["x", "y"], np.eye(2, dtype=np.float32), {"y": (False, [0, 1])}, "l",
        strategies=["score_min"], aggregations=[], frames=None, window=2, lookahead=1,
    )  # fmt: skip
    # x: min(1, 1) = 1 beats y: min(.6, .8) = .6
    assert tables["score_min"]["rank"].tolist() == [2]


# ---- comparison with truncate ----------------------------------------------------------


def rank_set(model, ranks, ids):
    return RankSet(model, "c", "long", np.array(ranks), 100, None, tuple(ids))


def test_compare_with_truncate_on_the_strategy_queries():
    ids = [f"q{i}" for i in range(6)]
    truncate = [rank_set("m", [1, 2, 4, 1, 10, 50], ids)]
    # the strategy ranked 4 of the queries (the others are temporal, say)
    mine = {("m", "c", "mean"): [rank_set("m~mean", [1, 1, 1, 1], ids[:4])]}
    summary, pairs = compare_strategies(truncate, mine, headline="mrr", n_boot=200, seed=0)
    entry = summary["results"]["c"]["long"]["m"]["mean"]
    assert entry["queries"] == 4
    # truncate on those 4 queries: (1 + 1/2 + 1/4 + 1) / 4 = 0.6875; the strategy: 1
    assert entry["truncate"] == pytest.approx(0.6875)
    assert entry["mrr"]["value"] == pytest.approx(1.0)
    assert entry["diff"] == pytest.approx(1 - 0.6875)
    assert (entry["strategy_better"], entry["truncate_better"]) == (2, 0)
    assert pairs[["model", "strategy", "model_a", "model_b"]].values.tolist() == [
        ["m", "mean", "m~mean", "m"]
    ]
    board = summary["leaderboards"]["c"]["long"]["m"]["sentences"]
    assert board["queries"] == 4 and set(board["models"]) == {"truncate", "mean"}


def test_config_lists_agree_and_validate():
    assert config_sentences.STRATEGIES == sentences.STRATEGIES
    assert config_sentences.AGGREGATIONS == sentences.AGGREGATIONS
    base = {"run": {"models": [], "collections": []}, "models": {}, "collections": {}}
    p = parse(base)
    assert p.sentences.strategies == list(sentences.STRATEGIES)
    assert (p.temporal.window, p.temporal.lookahead) == (10, 4)
    with pytest.raises(InputError, match="sentences.strategies"):
        parse({**base, "sentences": {"strategies": ["median"]}})
    with pytest.raises(InputError, match="temporal.window"):
        parse({**base, "temporal": {"window": 0}})


def test_smoke_pseudo_videos_cover_the_demo_images_six_to_a_video(tmp_path):
    from kisbench import layout
    from kisbench.data.collections import list_images
    from kisbench.data.frames import frames_path
    from kisbench.tools.temporal_demo import write_pseudo_videos

    images = tmp_path / layout.images_dir("demo")
    images.parent.mkdir(parents=True)
    images.symlink_to(layout.images_dir("demo").resolve())
    assert not frames_path("demo").exists()  # the real demo collection has no frame order
    frames = read_frames(write_pseudo_videos(tmp_path, "demo"))
    ids, _ = list_images(layout.images_dir("demo"))
    assert set(frames) == set(ids)
    by_video: dict[str, list[str]] = {}
    for image_id in sorted(frames):
        by_video.setdefault(frames[image_id].video, []).append(image_id)
    assert [len(v) for v in by_video.values()] == [6] * (len(ids) // 6)
    assert by_video["v01"] == ids[:6]
    assert [frames[i].position for i in ids[:6]] == [0, 1, 2, 3, 4, 5]


def test_check_reports_bad_frames_and_temporal_labels(tmp_path):
    from PIL import Image

    from kisbench.data.checks import check_collection

    folder = tmp_path / "c" / "images"
    folder.mkdir(parents=True)
    for name, colour in (("f1", "red"), ("f2", "blue")):
        Image.new("RGB", (8, 8), colour).save(folder / f"{name}.jpg")
    (tmp_path / "c" / "frames.csv").write_text(
        "image_id,video,position\nf1,v,0\nf2,v,1\nf3,v,2\n", encoding="utf-8"
    )
    labels = tmp_path / "c.csv"
    labels.write_text(
        "ID,short_label,temporal_label\nf1,red,red >> blue\nf2,blue,blue >>\n", encoding="utf-8"
    )
    report = check_collection("c", folder, labels, skip_unreadable=False, near=False)
    messages = [str(p) for p in report.problems]
    assert len(messages) == 2, messages
    assert any("frames.csv" in m and "f3 is no image of the collection" in m for m in messages)
    assert any("query f2 (temporal)" in m and "non-empty sub-queries" in m for m in messages)


def test_report_section_and_figure(tmp_path):
    from kisbench.report import sentences as report

    ids = [f"q{i}" for i in range(6)]
    truncate = [rank_set("m", [1, 2, 4, 1, 10, 50], ids)]
    mine = {("m", "c", "score_min"): [rank_set("m~score_min", [2, 2, 4, 1, 5, 50], ids)]}
    summary, _ = compare_strategies(truncate, mine, headline="mrr", n_boot=100, seed=0)
    written = report.draw(summary, tmp_path / "figures")
    assert list(written) == ["sentences/c-long.png"]
    assert written["sentences/c-long.png"].read_bytes()[:4] == b"\x89PNG"
    text = report.section(summary, written, tmp_path)
    # truncate (1 + 1/2 + 1/4 + 1 + 1/10 + 1/50) / 6 = 0.478; score_min: 1/2 for q0 (worse)
    # and 1/5 for q4 (better): 2.47 / 6 = 0.412; chance for 100 images: H_100 / 100 = 0.052
    row = next(line for line in text.splitlines() if line.startswith("| m | score_min"))
    assert "| 6 | 0.478 | 0.412 " in row and "| -0.067 " in row and "| 1 / 1 |" in row
    assert "has MRR 0.052" in text
    assert "](figures/sentences/c-long.png)" in text
    assert report.section({}, {}, tmp_path) == ""
