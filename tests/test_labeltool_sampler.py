"""Image order: the project's seeded draw, without replacement, held per tab."""

from __future__ import annotations

from kisbench.data.sampling import sample_ids
from kisbench.labeltool.sampler import Hold, next_image, sampling_order

IDS = [f"im{i:03d}" for i in range(50)]


def test_order_is_a_permutation_fixed_by_the_seed() -> None:
    order = sampling_order(IDS, 0)
    assert sorted(order) == IDS
    assert order == sampling_order(list(reversed(IDS)), 0)  # input order is irrelevant
    assert order != IDS  # 1/50! chance of failing by luck
    assert order != sampling_order(IDS, 1)


def test_labelling_in_turn_gives_the_recorded_protocols_sample() -> None:
    """Label what comes up, skip some: the labelled ids are ``sample_ids`` with the
    skipped ones replaced by the next draws, as labels/README.md describes the protocol."""
    order = sampling_order(IDS, 2024)
    taken: set[str] = set()
    labelled, skipped = [], []
    holds: dict[str, Hold] = {}
    for step in range(20):
        image_id, holds = next_image(order, taken, holds, "tab", now=0.0)
        assert image_id is not None
        (skipped if step % 6 == 5 else labelled).append(image_id)
        taken.add(image_id)
    assert sorted(labelled) == sorted(sample_ids(IDS, len(labelled), 2024, replaced=skipped))


def test_each_image_comes_up_once_and_taken_ones_never() -> None:
    order = sampling_order(IDS, 3)
    taken = {"im007", "im020"}
    served, holds = [], {}
    while True:
        image_id, holds = next_image(order, taken, holds, "tab", now=0.0)
        if image_id is None:
            break
        served.append(image_id)
        taken.add(image_id)
    assert sorted(served) == sorted(set(IDS) - {"im007", "im020"})


def test_tabs_get_different_images_and_a_reload_the_same() -> None:
    order = sampling_order(IDS, 0)
    a, holds = next_image(order, set(), {}, "a", now=0.0, hold_s=60)
    b, holds = next_image(order, set(), holds, "b", now=1.0, hold_s=60)
    assert a == order[0] and b == order[1]
    again, holds = next_image(order, set(), holds, "a", now=2.0, hold_s=60)
    assert again == a  # tab a reloaded
    # Tab a was closed; its hold lapses at 62. Tab b asks again and gets the first image.
    first, holds = next_image(order, set(), holds, "b", now=63.0, hold_s=60)
    assert first == a
    assert set(holds) == {a}  # b's older hold was released
    c, holds = next_image(order, set(), holds, "c", now=64.0, hold_s=60)
    assert c == b
    assert holds == {a: Hold("b", 123.0), b: Hold("c", 124.0)}


def test_holds_on_taken_images_are_dropped() -> None:
    order = sampling_order(IDS, 0)
    holds = {order[0]: Hold("x", 100.0)}
    image_id, holds = next_image(order, {order[0]}, holds, "y", now=0.0)
    assert image_id == order[1]
    assert set(holds) == {order[1]}
