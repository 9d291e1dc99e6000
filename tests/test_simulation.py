"""The simulated interactive search (kisbench/evaluation/simulation.py) against a plain
float64 re-implementation (tests/simulation_reference.py), a hand-worked example and
properties of the protocol."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from kisbench.config import simulation as config_simulation
from kisbench.config.simulation import Simulate
from kisbench.data.store import ONE_VECTOR, SEVERAL_VECTORS, EmbeddingSet
from kisbench.errors import InputError
from kisbench.evaluation import simulation as sim
from kisbench.reset.consistency import unit_vectors
from tests import simulation_reference as ref

CPU = torch.device("cpu")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def fixture() -> dict:
    """40 images in 6-D, 6 queries near their targets (some found at once, some not)."""
    rng = np.random.default_rng(7)
    images = unit(rng.standard_normal((40, 6)))
    targets = np.array([3, 11, 17, 22, 30, 38])
    queries = unit(images[targets] + 1.1 * rng.standard_normal((6, 6)))
    return {"images": images, "queries": queries, "targets": targets}


def module_search(fx: dict, protocol: sim.Protocol, scale: float, users, repeats=3, seed=1):
    cos = sim.text_cosines(fx["queries"], fx["images"], None, CPU)
    runs = sim.plan_runs(len(fx["targets"]), users, repeats)
    uniforms = sim.draws(len(runs.query), protocol.rounds, protocol.likes, seed)
    found, rank = sim.simulate(
        cos, torch.from_numpy(fx["images"]), fx["targets"], runs, protocol, scale, uniforms
    )
    return found, rank, runs, uniforms


def as_lists(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


@pytest.mark.parametrize("likes", [1, 2])
@pytest.mark.parametrize("exclude_shown", [False, True])
def test_whole_searches_agree_with_the_plain_reference(fixture, likes, exclude_shown):
    protocol = sim.Protocol(display=5, rounds=5, likes=likes, exclude_shown=exclude_shown)
    found, _, runs, uniforms = module_search(fixture, protocol, 10.0, sim.USERS)
    feats = as_lists(fixture["images"])
    cos_all = as_lists(fixture["queries"] @ fixture["images"].T)
    expected = [
        ref.search(
            cos_all[q],
            feats,
            int(fixture["targets"][q]),
            user,
            n=5,
            rounds=5,
            k=likes,
            p=13.0,
            sigma=0.1,
            scale=10.0,
            uniforms=as_lists(uniforms[r]),
            exclude_shown=exclude_shown,
        )
        for r, (q, user) in enumerate(zip(runs.query, runs.user, strict=True))
    ]
    assert found.tolist() == expected
    # The fixture is not trivial: some runs find the target late, some never.
    assert {0, -1} <= set(expected) and any(f > 0 for f in expected)


@pytest.mark.parametrize("user", sim.USERS)
def test_one_update_step_agrees_with_the_plain_reference(fixture, user):
    images, queries, targets = fixture["images"], fixture["queries"], fixture["targets"]
    feats = as_lists(images)
    q = 1
    cos = sim.text_cosines(queries[q : q + 1], images, None, CPU)
    scores = sim.start_scores(cos, 10.0)
    shown = sim.top_display(scores, 5)
    ref_scores = ref.start(as_lists(queries[q] @ images.T), 10.0)
    assert shown[0].tolist() == ref.display(ref_scores, 5)
    u = np.array([[0.37, 0.81]])
    cos_t = torch.from_numpy(images[shown[0].numpy()] @ images[targets[q]])[None, :]
    liked = sim.pick(user, cos_t, 2, 13.0, torch.from_numpy(u))
    ref_liked = ref.pick(user, shown[0].tolist(), feats, int(targets[q]), 2, 13.0, [0.37, 0.81])
    assert liked[0].tolist() == ref_liked
    sim.update(scores, sim.Kernel(torch.from_numpy(images), 0.1), shown, liked)
    expected = ref.update(ref_scores, feats, shown[0].tolist(), ref_liked, 0.1)
    np.testing.assert_allclose(scores[0].numpy(), np.log(expected), atol=2e-4)


def test_the_ideal_user_on_a_hand_worked_collection():
    # Four images on the unit circle at 0, 60, 90 and 180 degrees; the query at -30
    # degrees, the target the image at 90 (index 2); displays of n = 2, c = 2, sigma 0.1.
    # Text cosines: cos 30 = .866, cos 90 = 0, cos 120 = -.5, cos 210 = -.866, so display 0
    # is {0, 1}: not found. The ideal user likes image 1 (cos 30 to the target, image 0
    # has cos 90 = 0). With e(i, x) = exp(10 (cos - 1)), the factor e(i,1) / (e(i,1) + e(i,0)):
    #   image 0: e^-5 / (e^-5 + 1)                          = 0.006693
    #   image 1: 1 / (1 + e^-5)                             = 0.993307
    #   image 2: exp(10 (.866 - 1)) / (that + e^-10) = 0.26192 / 0.26197 = 0.999827
    #   image 3: e^-15 / (e^-15 + e^-20)                    = 0.993307
    # Start scores exp(2 cos): 5.652, 1, 0.3679, 0.1769; times the factors: 0.03783,
    # 0.9933, 0.3678, 0.1757; divided by the largest (0.9933): 0.03809, 1, 0.3703,
    # 0.1769. Display 1 is {1, 2}: the target is found at display 1.
    angles = np.radians([0.0, 60.0, 90.0, 180.0])
    images = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    query = np.array([[math.cos(math.radians(-30)), math.sin(math.radians(-30))]], np.float32)
    cos = sim.text_cosines(query, images, None, CPU)
    scores = sim.start_scores(cos, 2.0)
    shown = sim.top_display(scores, 2)
    assert shown.tolist() == [[0, 1]]
    cos_t = torch.from_numpy(images[[0, 1]] @ images[2])[None, :]
    liked = sim.pick("ideal", cos_t, 1, 13.0, torch.zeros((1, 1)))
    assert liked.tolist() == [[1]]
    sim.update(scores, sim.Kernel(torch.from_numpy(images), 0.1), shown, liked)
    np.testing.assert_allclose(np.exp(scores[0].numpy()), [0.03809, 1.0, 0.3703, 0.1769], rtol=2e-3)
    protocol = sim.Protocol(display=2, rounds=3, likes=1)
    runs = sim.plan_runs(1, ["ideal"], 1)
    found, rank = sim.simulate(
        cos, torch.from_numpy(images), np.array([2]), runs, protocol, 2.0,
        sim.draws(1, 3, 1, 0),
    )  # fmt: skip
    assert found.tolist() == [1]
    assert rank.tolist() == [3]  # text order 0, 1, 2, 3


@pytest.mark.parametrize("likes", [1, 2])
def test_ransam_with_a_very_large_p_is_the_ideal_user(fixture, likes):
    protocol = sim.Protocol(display=5, rounds=5, likes=likes, p=1e6)
    found, _, runs, _ = module_search(fixture, protocol, 10.0, ["ideal", "ransam"], repeats=4)
    users = np.array(runs.user)
    ideal = found[users == "ideal"]
    ransam = found[users == "ransam"].reshape(len(ideal), 4)
    assert (ransam == ideal[:, None]).all()
    # ... while with p = 13 the draws do differ from the ideal user somewhere
    mild = sim.Protocol(display=5, rounds=5, likes=likes, p=13.0)
    found13, _, _, _ = module_search(fixture, mild, 10.0, ["ideal", "ransam"], repeats=4)
    assert not (found13[users == "ransam"].reshape(len(ideal), 4) == ideal[:, None]).all()


def test_a_target_on_display_0_is_found_at_0_by_every_user(fixture):
    images = fixture["images"]
    targets = fixture["targets"]
    cos = sim.text_cosines(images[targets], images, None, CPU)  # the query is the target
    runs = sim.plan_runs(len(targets), sim.USERS, 3)
    protocol = sim.Protocol(display=5, rounds=4)
    found, rank = sim.simulate(
        cos, torch.from_numpy(images), targets, runs, protocol, 10.0,
        sim.draws(len(runs.query), 4, 1, 0),
    )  # fmt: skip
    assert (found == 0).all() and (rank == 1).all()


def test_blocks_and_kernel_cache_do_not_change_the_result(fixture, monkeypatch):
    protocol = sim.Protocol(display=5, rounds=5, likes=2)
    whole, _, _, _ = module_search(fixture, protocol, 10.0, sim.USERS)
    monkeypatch.setattr(sim, "SCORE_BYTES", 4 * 40 * 3)  # three runs a block
    monkeypatch.setattr(sim, "KERNEL_CACHE_BYTES", 0)  # kernel computed per chunk
    monkeypatch.setattr(sim, "GATHER_BYTES", 4 * 3 * 6 * 7)  # a few images a chunk
    pieces, _, _, _ = module_search(fixture, protocol, 10.0, sim.USERS)
    assert pieces.tolist() == whole.tolist()


def sets(fixture: dict, several: bool = False) -> tuple[dict, dict]:
    ids = [f"{i:03d}" for i in range(40)]
    vectors = fixture["images"]
    meta = {"vectors": ONE_VECTOR.to_meta(), "logit_scale": 10.0}
    if several:  # three vectors per image: the image's own, and two noisy ones
        rng = np.random.default_rng(3)
        vectors = unit(vectors[:, None, :] + 0.5 * rng.standard_normal((40, 3, 6)))
        meta = {"vectors": SEVERAL_VECTORS.to_meta()}
    images = {"m": EmbeddingSet(ids, vectors, meta)}
    qids = [ids[t] for t in fixture["targets"]]
    queries = {"m": EmbeddingSet(qids, fixture["queries"], {"kind": "queries"})}
    return images, queries


def csv_bytes(images: dict, queries: dict, opts: Simulate) -> bytes:
    table = sim.simulate_labelset(images, queries, [("m", "m")], opts, CPU)
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue().encode()


def test_same_seed_gives_byte_identical_tables(fixture):
    images, queries = sets(fixture)
    opts = Simulate(display=5, displays=5, repeats=3, seed=4)
    first = csv_bytes(images, queries, opts)
    assert first == csv_bytes(images, queries, opts)
    assert first != csv_bytes(images, queries, Simulate(display=5, displays=5, repeats=3, seed=5))
    assert b",10.0," in first  # the model's logit_scale, from its meta.json


def test_multi_vector_images_score_their_best_vector_and_feed_back_their_mean(fixture):
    images, queries = sets(fixture, several=True)
    vecs = images["m"].vectors
    cos = sim.text_cosines(fixture["queries"], vecs, SEVERAL_VECTORS, CPU).numpy()
    best = np.einsum("md,nqd->mnq", fixture["queries"], vecs).max(axis=2)
    np.testing.assert_allclose(cos, best, atol=1e-6)
    np.testing.assert_allclose(
        sim.feedback_vectors(vecs, SEVERAL_VECTORS), unit_vectors(vecs, SEVERAL_VECTORS), atol=1e-6
    )
    table = sim.simulate_labelset(images, queries, [("m", "m")], Simulate(display=5), CPU)
    assert (table["scale"] == 100.0).all()  # no logit_scale recorded: the constant


def test_temperature_modes():
    assert sim.start_scale({"logit_scale": 42.0}, "model", 100.0) == 42.0
    assert sim.start_scale({}, "model", 100.0) == 100.0
    assert sim.start_scale({"logit_scale": None}, "model", 7.0) == 7.0
    assert sim.start_scale({"logit_scale": 42.0}, "constant", 100.0) == 100.0
    # exp(-50 (1 - cos) / 2) = exp(-25) exp(25 cos): the scale 25 up to a factor
    assert sim.start_scale({"logit_scale": 42.0}, "anchor", 100.0) == 25.0


def test_the_config_lists_agree_with_the_module():
    assert config_simulation.USERS == sim.USERS
    assert config_simulation.TEMPERATURES == sim.TEMPERATURES


def test_summary_shares_and_reference_line(fixture):
    images, queries = sets(fixture)
    opts = Simulate(display=5, displays=4, repeats=2)
    table = sim.simulate_labelset(images, queries, [("m", "m")], opts, CPU)
    out = sim.summary(table, 4, 5, n_boot=200, seed=0)["m"]
    for user in sim.USERS:
        rows = table[table["user"] == user]
        f = rows["found_at"].to_numpy()
        for n in range(5):
            share = out[user][f"within_{n}"]
            assert share["value"] == pytest.approx(np.mean((f >= 0) & (f <= n)))
            assert share["low"] <= share["value"] <= share["high"]
        ranks = rows.drop_duplicates("query_id")["text_rank"].to_numpy()
        assert out[user]["text_only"]["r@5"] == pytest.approx(np.mean(ranks <= 5))
        # found at display 0 is exactly R@n of the text ranking
        assert out[user]["within_0"]["value"] == pytest.approx(np.mean(ranks <= 5))


def test_display_ties_go_to_the_lower_index():
    # 1.0 first, then three images tie at 0.5 for the last two places: indices 1 and 3.
    scores = torch.tensor([[0.2, 0.5, 1.0, 0.5, 0.5, 0.1]]).log()
    assert sim.top_display(scores, 3).tolist() == [[1, 2, 3]]
    rng = np.random.default_rng(0)
    many = rng.integers(0, 4, (50, 30)).astype(np.float32)  # ties everywhere
    shown = sim.top_display(torch.from_numpy(many), 7)
    assert shown.tolist() == [ref.display(row.tolist(), 7) for row in many]


def test_bad_pairs_and_likes_are_input_errors():
    assert sim.entries(["a", "b"], ["a:b"]) == [("a", "a"), ("b", "b"), ("a", "b")]
    with pytest.raises(InputError, match="TEXT:FEEDBACK"):
        sim.entries(["a", "b"], ["a-b"])
    with pytest.raises(InputError, match="not in run.models"):
        sim.entries(["a", "b"], ["a:c"])
    with pytest.raises(InputError, match="fewer than"):
        sim.protocol_of(Simulate(display=4, likes=4))


def test_excluding_shown_images_finds_every_target_once_all_are_shown(fixture):
    # 12 images, displays of 5 without repeats: 5 + 5 + 2, so display 2 holds the rest and
    # every target is found by then, by every user, as the plain reference says too.
    images, queries = fixture["images"][:12], fixture["queries"][:3]
    targets = np.array([3, 7, 11])
    protocol = sim.Protocol(display=5, rounds=6, exclude_shown=True)
    runs = sim.plan_runs(3, sim.USERS, 2)
    uniforms = sim.draws(len(runs.query), 6, 1, 2)
    cos = sim.text_cosines(queries, images, None, CPU)
    found, _ = sim.simulate(cos, torch.from_numpy(images), targets, runs, protocol, 10.0, uniforms)
    assert found.max() <= 2 and (found >= 0).all()
    feats, cos_all = as_lists(images), as_lists(queries @ images.T)
    expected = [
        ref.search(
            cos_all[q], feats, int(targets[q]), user, n=5, rounds=6, k=1, p=13.0, sigma=0.1,
            scale=10.0, uniforms=as_lists(uniforms[r]), exclude_shown=True,
        )
        for r, (q, user) in enumerate(zip(runs.query, runs.user, strict=True))
    ]  # fmt: skip
    assert found.tolist() == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_gpu_finds_the_same_displays(fixture, monkeypatch):
    protocol = sim.Protocol(display=5, rounds=5, likes=2)
    on_cpu, _, runs, uniforms = module_search(fixture, protocol, 10.0, sim.USERS)
    gpu = torch.device("cuda")
    for cache in (sim.KERNEL_CACHE_BYTES, 0):  # the all-pairs kernel, and chunks
        monkeypatch.setattr(sim, "KERNEL_CACHE_BYTES", cache)
        cos = sim.text_cosines(fixture["queries"], fixture["images"], None, gpu)
        feedback = torch.from_numpy(fixture["images"]).to(gpu)
        found, _ = sim.simulate(cos, feedback, fixture["targets"], runs, protocol, 10.0, uniforms)
        assert found.tolist() == on_cpu.tolist()


def test_the_figure_and_the_report_section(fixture, tmp_path):
    from kisbench.report import simulation as report

    images, queries = sets(fixture)
    opts = Simulate(display=5, displays=3, repeats=2)
    table = sim.simulate_labelset(images, queries, [("m", "m")], opts, CPU)
    summary, pairs, curves = sim.results({("c", "l"): table}, opts, n_boot=100, seed=0)
    for (collection, labelset, user), frame in curves.items():
        frame.to_csv(tmp_path / f"{collection}-{labelset}-{user}.csv", index=False)
    written = report.draw(summary, ["m"], tmp_path / "figures", curves=tmp_path)
    (name, path), *_ = written.items()
    assert name == "simulation/c-l.png" and path.stat().st_size > 10_000
    text = report.section(summary, written, tmp_path, pairs)
    share = summary["c"]["l"]["m"]["ideal"]["within_0"]["value"]
    assert f"| m | ideal | {share:.2f} [" in text
    assert "(figures/simulation/c-l.png)" in text
