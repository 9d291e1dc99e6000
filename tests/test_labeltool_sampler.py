"""Image order: seeded, without replacement, held per tab."""

from __future__ import annotations

from kisbench.labeltool.sampler import Sampler, sampling_order

IDS = [f"im{i:03d}" for i in range(50)]


def test_order_is_a_permutation_fixed_by_seed_and_annotator() -> None:
    order = sampling_order(IDS, 0, "ann")
    assert sorted(order) == IDS
    assert order == sampling_order(list(reversed(IDS)), 0, "ann")  # input order is irrelevant
    assert order != IDS  # 1/50! chance of failing by luck
    assert order != sampling_order(IDS, 1, "ann")
    assert order != sampling_order(IDS, 0, "bob")


def test_each_image_comes_up_once_and_taken_ones_never() -> None:
    sampler = Sampler(sampling_order(IDS, 3, "ann"))
    taken = {"im007", "im020"}
    served = []
    while (image_id := sampler.next(taken, "tab")) is not None:
        served.append(image_id)
        taken.add(image_id)
    assert sorted(served) == sorted(set(IDS) - {"im007", "im020"})
    assert sampler.remaining(taken) == 0


def test_a_restart_resumes_the_same_sequence() -> None:
    order = sampling_order(IDS, 5, "ann")
    first = Sampler(order)
    taken: set[str] = set()
    for _ in range(7):
        taken.add(first.next(taken, "tab"))
    expected = first.next(taken, "tab")
    restarted = Sampler(sampling_order(IDS, 5, "ann"))
    assert restarted.next(taken, "other tab") == expected


def test_tabs_get_different_images_and_a_reload_the_same() -> None:
    now = [0.0]
    sampler = Sampler(sampling_order(IDS, 0, "ann"), hold_s=60, clock=lambda: now[0])
    a = sampler.next(set(), "a")
    b = sampler.next(set(), "b")
    assert a != b
    assert sampler.next(set(), "a") == a  # reload of tab a
    now[0] = 61.0  # a's hold ran out while tab a was closed
    assert sampler.next(set(), "b") == a
    assert sampler.next(set(), "c") == b  # b released its old image when it asked again
