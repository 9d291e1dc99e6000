"""RESET computation: hand-worked cases and an independent re-implementation of the thesis'
notebook (row-by-row, as its code did) on a generated RESET-format data set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kisbench.errors import InputError
from kisbench.reset.consistency import (
    evaluate,
    extend_triplets,
    mean_ci,
    model_distances,
    unit_vectors,
)
from kisbench.reset.data import (
    ResetSettings,
    extractors,
    read_judgements,
    read_participants,
    read_triplets,
)
from tests.reset_fixture import PAPER, assert_nan_exactly_where_missing, make_reset
from tests.reset_reference import thesis_reference

# ---------------------------------------------------------------------------------------
# A case small enough to work by hand. Extractors A and B come from the triplets file;
# "m" stands for a project model: A's distances, but none for T4 (a keyframe without an
# embedding), which must exclude T4's judgement for every extractor.
#
#        class    A: d(q,c1) d(q,c2) d(c1,c2)   B: d(q,c1) d(q,c2) d(c1,c2)
#   T1  general      0.2     0.5     0.4           0.6     0.3     0.5
#   T2  scuba        0.0     0.0     0.0 (tie)     0.1     0.7     0.6
#   T3  wedding      0.3     0.1     0.2           0.5     0.2     0.0
#   T4  general      0.1     0.2     0.3           0.1     0.2     0.3   (m: empty)
#   T5  wedding      0.9     0.2     0.8           0.4     0.45    0.1
#
#   judgement  triplet user choice simplified  left option  -> human prefers
#   1          T1      1    -2     -1          c1           c1
#   2          T1      2    +1     +1          c2           c1
#   3          T1      3     0      0          c1           (indifferent)
#   4          T2      1    +1     +1          c1           c2
#   5          T2      2    -1     -1          c2           c2
#   10         T2      3    -1     -1          c1           c1
#   6          T3      1    -1     -1          c1           c1
#   7          T3      2    -2     -1          c2           c2
#   8          T4      1    +2     +1          c1           (excluded: m has no distance)
#   9          T1      9    -2     -1          c1           (excluded: user 9 unknown)
#   11         T5      1    +2     +1          c1           c2
# ---------------------------------------------------------------------------------------
HAND_TRIPLETS = """triplet_id,model,target_path,candidate1_path,candidate2_path,class,\
A_cosdist_query_candidate1,A_cosdist_query_candidate2,A_cosdist_candidates,\
B_cosdist_query_candidate1,B_cosdist_query_candidate2,B_cosdist_candidates,\
m_cosdist_query_candidate1,m_cosdist_query_candidate2,m_cosdist_candidates
T1,A,01/q1.jpg,01/a1.jpg,01/b1.jpg,general,0.2,0.5,0.4,0.6,0.3,0.5,0.2,0.5,0.4
T2,A,02/q2.jpg,02/a2.jpg,02/b2.jpg,scuba,0.0,0.0,0.0,0.1,0.7,0.6,0.0,0.0,0.0
T3,B,03/q3.jpg,03/a3.jpg,03/b3.jpg,wedding,0.3,0.1,0.2,0.5,0.2,0.0,0.3,0.1,0.2
T4,B,04/q4.jpg,04/a4.jpg,04/b4.jpg,general,0.1,0.2,0.3,0.1,0.2,0.3,,,
T5,A,05/q5.jpg,05/a5.jpg,05/b5.jpg,wedding,0.9,0.2,0.8,0.4,0.45,0.1,0.9,0.2,0.8
"""
HAND_JUDGEMENTS = [  # judgement, triplet, user, choice, simplified, candidate1 shown left
    (1, "T1", 1, -2, -1, True),
    (2, "T1", 2, 1, 1, False),
    (3, "T1", 3, 0, 0, True),
    (4, "T2", 1, 1, 1, True),
    (5, "T2", 2, -1, -1, False),
    (10, "T2", 3, -1, -1, True),
    (6, "T3", 1, -1, -1, True),
    (7, "T3", 2, -2, -1, False),
    (8, "T4", 1, 2, 1, True),
    (9, "T1", 9, -2, -1, True),
    (11, "T5", 1, 2, 1, True),
]


def write_hand_case(folder: Path) -> tuple[Path, Path, Path]:
    (folder / "triplets.csv").write_text(HAND_TRIPLETS, encoding="utf-8")
    (folder / "participants.csv").write_text("user_id,ml_expert\n1,no\n2,no\n3,yes\n")
    paths = {r.split(",")[0]: r.split(",")[3:5] for r in HAND_TRIPLETS.splitlines()[1:]}
    lines = [
        "judgement_id,triplet_id,user_id,choice,simplified_choice,option_one_path,"
        "option_two_path,time_spent"
    ]
    for jid, t, user, choice, simple, c1_left in HAND_JUDGEMENTS:
        c1, c2 = paths[t]
        left, right = (c1, c2) if c1_left else (c2, c1)
        lines.append(f"{jid},{t},{user},{choice},{simple},{left},{right},3.5")
    (folder / "triplet_judgements.csv").write_text("\n".join(lines) + "\n")
    return folder / "participants.csv", folder / "triplet_judgements.csv", folder / "triplets.csv"


def hand_result(tmp_path: Path, ties: str):
    p, j, t = write_hand_case(tmp_path)
    triplets = read_triplets(t)
    return evaluate(
        read_judgements(j),
        read_participants(p),
        triplets,
        ["A", "B", "m"],
        project=["m"],
        ties=ties,
        n_boot=200,
    )


def pearson_by_formula(x: list[float], y: list[float]) -> float:
    n = len(x)
    sx, sy = sum(x), sum(y)
    sxy = sum(a * b for a, b in zip(x, y, strict=True))
    sxx, syy = sum(a * a for a in x), sum(b * b for b in y)
    return (n * sxy - sx * sy) / math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))


def test_hand_case_counts(tmp_path: Path) -> None:
    r = hand_result(tmp_path, "left")
    c = r.counts
    assert c["judgements"] == 11
    assert c["unknown_user"] == 1  # judgement 9
    assert c["missing_keyframe"] == 1  # judgement 8: T4 has no distance for m
    assert c["missing_distance"] == 0
    assert c["used"] == 9
    assert c["indifferent"] == 1  # judgement 3
    assert c["variant1_judgements"] == 8
    # Variant 2: T1 (3 judgements: 2 chose c1, 0 chose c2 -> c1) and T2 (3: 1 chose c1,
    # 2 chose c2 -> c2); T3 is split 1:1 and T5 has a single judgement: both dropped.
    assert c["variant2_triplets"] == 2
    assert r.classes == ["general", "scuba", "wedding"]


@pytest.mark.parametrize(
    ("ties", "a_v1", "a_v2"),
    [
        # A, variant 1, per judgement (left/right distances -> extractor's pick vs human):
        #  1 T1 .2|.5 L=L +   2 T1 .5|.2 R=R +   4 T2 0|0 tie, human R
        #  5 T2 tie, human L  10 T2 tie, human L  6 T3 .3|.1 R vs L -
        #  7 T3 .1|.3 L=L +   11 T5 .9|.2 R=R +
        # left: ties go left: 4 -, 5 +, 10 + -> 6/8; exclude: 4/5 (1,2,6,7,11);
        # half: 5 + 3 * 0.5 = 5.5/8.
        # A, variant 2: T1 d1 < d2 -> c1, humans c1: agree; T2 tie, humans c2:
        # left -> c1 (disagree) 1/2, exclude -> 1/1, half -> (1 + 0.5)/2.
        ("left", 6 / 8, 1 / 2),
        ("exclude", 4 / 5, 1.0),
        ("half", 5.5 / 8, 0.75),
    ],
)
def test_hand_case_consistency(tmp_path: Path, ties: str, a_v1: float, a_v2: float) -> None:
    r = hand_result(tmp_path, ties)
    a, b, m = r.scores["A"], r.scores["B"], r.scores["m"]
    assert a["variant1"]["value"] == pytest.approx(a_v1)
    assert a["variant2"]["value"] == pytest.approx(a_v2)
    assert a["variant1"]["ties"] == 3  # judgements 4, 5, 10
    assert a["variant2"]["ties"] == 1  # T2
    assert a["variant1"]["n"] == (5 if ties == "exclude" else 8)
    # B never ties. Variant 1: 1 T1 .6|.3 R vs L -, 2 .3|.6 L vs R -, 4 .1|.7 L vs R -,
    # 5 .7|.1 R vs L -, 10 .1|.7 L=L +, 6 .5|.2 R vs L -, 7 .2|.5 L=L +, 11 .4|.45 L vs R -.
    assert b["variant1"]["value"] == pytest.approx(2 / 8)
    # Variant 2: T1 .6 > .3 -> c2 vs humans c1; T2 .1 < .7 -> c1 vs humans c2.
    assert b["variant2"]["value"] == pytest.approx(0.0)
    # m has A's distances on every judgement that is used.
    assert m["variant1"]["value"] == a["variant1"]["value"]
    assert m["source"] == "project" and a["source"] == "paper"


def test_hand_case_classes(tmp_path: Path) -> None:
    a = hand_result(tmp_path, "left").scores["A"]["classes"]
    assert a["general"]["variant1"]["value"] == pytest.approx(2 / 2)  # judgements 1, 2
    assert a["scuba"]["variant1"]["value"] == pytest.approx(2 / 3)  # 4 -, 5 +, 10 +
    assert a["wedding"]["variant1"]["value"] == pytest.approx(2 / 3)  # 6 -, 7 +, 11 +
    assert a["general"]["variant2"]["n"] == 1 and a["scuba"]["variant2"]["n"] == 1
    assert a["wedding"]["variant2"]["n"] == 0  # T3 split, T5 one judgement


def test_hand_case_correlations(tmp_path: Path) -> None:
    r = hand_result(tmp_path, "left")
    # Preference for c1 of the 9 used judgements (1, 2, 3, 4, 5, 10, 6, 7, 11):
    # choice with its sign flipped when c1 was on the left.
    pref = [2, 1, 0, -1, -1, 1, 1, -2, -2]
    # A's differences d(q,c2) - d(q,c1): T1 .3, T2 0, T3 -.2, T5 -.7
    raw = [0.3] * 3 + [0.0] * 3 + [-0.2] * 2 + [-0.7]
    # ... divided by max(d1, d2): .3/.5, 0/0 -> 0 (the thesis' fillna(0)), -.2/.3, -.7/.9
    max_norm = [0.6] * 3 + [0.0] * 3 + [-2 / 3] * 2 + [-7 / 9]
    # ... divided by d(c1,c2): .3/.4, 0/1e-5 (0 replaced), -.2/.2, -.7/.8
    c1c2 = [0.75] * 3 + [0.0] * 3 + [-1.0] * 2 + [-0.875]
    a = r.scores["A"]
    # Pearson of raw, worked out: n=9, sum x=-.2, sum y=-1, sum xy=2.5, sum x^2=.84,
    # sum y^2=17 -> (9*2.5 - .2) / sqrt((9*.84 - .04) * (9*17 - 1)) = 22.3 / sqrt(7.52*152)
    assert a["pearson"]["raw"] == pytest.approx(22.3 / math.sqrt(7.52 * 152))
    assert a["pearson"]["raw"] == pytest.approx(pearson_by_formula(raw, pref))
    assert a["pearson"]["max_norm"] == pytest.approx(pearson_by_formula(max_norm, pref))
    assert a["pearson"]["c1c2_norm"] == pytest.approx(pearson_by_formula(c1c2, pref))
    # Spearman = Pearson of average ranks: x ranks [8,8,8,5,5,5,2.5,2.5,1],
    # y ranks [9,7,5,3.5,3.5,7,7,1.5,1.5]; centred products sum to 35.75, squares to
    # 55.5 and 57.
    assert a["spearman"]["raw"] == pytest.approx(35.75 / math.sqrt(55.5 * 57))
    # B's T3 has d(c1,c2) = 0: (.2 - .5) / 1e-5
    b_c1c2 = [-0.6] * 3 + [1.0] * 3 + [-30000.0] * 2 + [0.5]
    assert r.scores["B"]["pearson"]["c1c2_norm"] == pytest.approx(pearson_by_formula(b_c1c2, pref))


def test_hand_case_table_and_headline(tmp_path: Path) -> None:
    r = hand_result(tmp_path, "left")
    assert list(r.table["extractor"]) == ["A", "m", "B"]  # 0.75, 0.75 (stable), 0.25
    head = r.headline()
    assert head["judgements"] == 8
    assert head["consistency_v1"] == {"A": 0.75, "m": 0.75, "B": 0.25}


# ---------------------------------------------------------------------------------------
# Distances from embeddings
# ---------------------------------------------------------------------------------------


def test_model_distances_by_hand() -> None:
    triplets = pd.DataFrame(
        {
            "target_path": ["a/q.jpg", "a/q.jpg"],
            "candidate1_path": ["a/x.png", "a/gone.jpg"],
            "candidate2_path": ["b/y.jpg", "b/y.jpg"],
        },
        index=pd.Index(["t1", "t2"], name="triplet_id"),
    )
    ids = ["b/y", "a/x", "a/q"]  # matched by path without extension, any order
    vectors = np.array([[0.6, 0.8], [0.0, 2.0], [1.0, 0.0]])  # a/x is re-normalised
    d, missing = model_distances(triplets, ids, vectors)
    # q=(1,0), x=(0,1), y=(.6,.8): d(q,x)=1, d(q,y)=1-.6=.4, d(x,y)=1-.8=.2
    assert d.loc["t1"].tolist() == pytest.approx([1.0, 0.4, 0.2])
    # t2's candidate1 has no embedding: only d(q,c2) is known, the others are NaN
    assert np.isnan(d.loc["t2", "cosdist_query_candidate1"])
    assert d.loc["t2", "cosdist_query_candidate2"] == pytest.approx(0.4)
    assert np.isnan(d.loc["t2", "cosdist_candidates"])
    assert missing == ["a/gone.jpg"]


def test_multi_vector_is_mean_of_vectors_renormalised() -> None:
    v = np.array([[[1.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [3.0, 0.0]]])
    u = unit_vectors(v)
    assert u[0] == pytest.approx([2**-0.5, 2**-0.5])
    assert u[1] == pytest.approx([1.0, 0.0])


def test_extended_triplets_keep_input_and_add_model_columns(tmp_path: Path) -> None:
    fx = make_reset(tmp_path)
    triplets = read_triplets(fx.triplets)
    ids, vecs = fx.embeddings["m_single"]
    d, missing = model_distances(triplets, ids, vecs)
    ext = extend_triplets(triplets, {"m_single": d})
    assert missing == fx.missing
    assert list(ext.columns[: len(triplets.columns)]) == list(triplets.columns)
    new = [f"m_single_{s}" for s in ("cosdist_query_candidate1", "cosdist_query_candidate2")]
    assert set(new) < set(ext.columns)
    assert_nan_exactly_where_missing(ext, "m_single", fx.missing)
    assert not (ext.filter(like="m_single_") == 1.11).any().any()


# ---------------------------------------------------------------------------------------
# The thesis' method, re-implemented row by row (as its notebook did), on generated data
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ties", ["left", "exclude", "half"])
def test_matches_row_by_row_reference(tmp_path: Path, ties: str) -> None:
    fx = make_reset(tmp_path, seed=3)
    models = list(fx.embeddings)
    triplets = read_triplets(fx.triplets)
    per_model = {m: model_distances(triplets, *fx.embeddings[m])[0] for m in models}
    ext = extend_triplets(triplets, per_model)
    result = evaluate(
        read_judgements(fx.judgements),
        read_participants(fx.participants),
        ext,
        extractors(triplets, models, fx.triplets),
        project=models,
        ties=ties,
        n_boot=50,
    )
    ref = thesis_reference(fx, models, ties)
    assert result.counts["used"] == ref["_used"]
    assert result.counts["unknown_user"] >= 1 and result.counts["missing_keyframe"] >= 1
    for x in [*PAPER, *models]:
        s, r = result.scores[x], ref[x]
        assert s["variant1"]["n"] == len(r["v1"]), x
        assert s["variant1"]["value"] == pytest.approx(np.mean(r["v1"])), x
        assert s["variant1"]["ties"] == r["v1_ties"], x
        assert s["variant2"]["n"] == len(r["v2"]), x
        assert s["variant2"]["value"] == pytest.approx(np.mean(r["v2"])), x
        assert s["variant2"]["ties"] == r["v2_ties"], x
        for corr in ("pearson", "spearman"):
            for name in ("raw", "max_norm", "c1c2_norm"):
                assert s[corr][name] == pytest.approx(r[corr][name]), (x, corr, name)
    # the fixture's planted ties: W2VV in the file, and T103 (c1 == c2) for every model
    assert result.scores["W2VVExtractor"]["variant1"]["ties"] > 0
    for m in models:
        assert result.scores[m]["variant1"]["ties"] > 0


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    values = np.random.default_rng(1).integers(0, 2, size=300).astype(float)
    a, b = mean_ci(values, 500, seed=7), mean_ci(values, 500, seed=7)
    assert a == b
    assert a["low"] < a["value"] < a["high"]
    assert mean_ci(values, 500, seed=8) != a
    # the interval shrinks with more data of the same mean (a property, not a value)
    wide = mean_ci(values[:30], 500, seed=7)
    assert (wide["high"] - wide["low"]) > (a["high"] - a["low"])


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def test_thesis_sentinel_is_refused(tmp_path: Path) -> None:
    _, _, t = write_hand_case(tmp_path)
    t.write_text(HAND_TRIPLETS.replace("0.9,0.2,0.8,0.4", "1.11,0.2,0.8,0.4"))
    with pytest.raises(InputError, match="1.11"):
        read_triplets(t)


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="RESET is not public"):
        read_participants(tmp_path / "nope.csv")


def test_bad_choice_names_the_line(tmp_path: Path) -> None:
    _, j, _ = write_hand_case(tmp_path)
    lines = j.read_text().splitlines()
    lines[3] = lines[3].replace(",0,0,", ",3,0,")  # judgement 3: choice 3
    j.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"choice must be an integer from -2 to 2.*line\(s\) 4"):
        read_judgements(j)


def test_missing_column_is_named(tmp_path: Path) -> None:
    _, _, t = write_hand_case(tmp_path)
    t.write_text(HAND_TRIPLETS.replace(",class,", ",klass,"))
    with pytest.raises(InputError, match="missing column.*class"):
        read_triplets(t)


def test_model_clashing_with_file_columns(tmp_path: Path) -> None:
    _, _, t = write_hand_case(tmp_path)
    triplets = read_triplets(t)
    with pytest.raises(InputError, match="already has distance columns for m"):
        extractors(triplets, ["m"], t)


def test_settings_checked() -> None:
    params = {
        "models": {"a": {}},
        "reset": {"participants": "p", "judgements": "j", "triplets": "t", "models": ["a"]},
    }
    assert ResetSettings.from_params(params).ties == "left"
    params["reset"]["ties"] = "right"
    with pytest.raises(InputError, match="reset.ties"):
        ResetSettings.from_params(params)
    params["reset"] |= {"ties": "left", "models": ["b"]}
    with pytest.raises(InputError, match="unknown model"):
        ResetSettings.from_params(params)


def test_empty_cell_in_triplets_file_excludes_for_all(tmp_path: Path) -> None:
    p, j, t = write_hand_case(tmp_path)
    t.write_text(HAND_TRIPLETS.replace("0.9,0.2,0.8,0.4,0.45,0.1", "0.9,0.2,0.8,,0.45,0.1"))
    r = evaluate(
        read_judgements(j), read_participants(p), read_triplets(t), ["A", "B", "m"], project=["m"]
    )
    # T5's only judgement (11) goes, for A too: A's variant 1 loses its agreement on 11
    assert r.counts["missing_distance"] == 1 and r.counts["missing_keyframe"] == 1
    assert r.scores["A"]["variant1"]["value"] == pytest.approx(5 / 7)
