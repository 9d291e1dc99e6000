"""A plain re-implementation of the simulated search (docs/simulation.md) for the tests.

Python floats (float64), a loop per image, no arrays, no shortcuts: the start scores are
exp(c cos) as written (no division by the maximum, no logarithms), the update is the
formula of the issue term by term. It shares nothing with kisbench.evaluation.simulation
but the protocol, and the users' uniform numbers, which it is given.
"""

from __future__ import annotations

import math

FLOOR = 1e-12


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def start(cosines: list[float], scale: float) -> list[float]:
    return [math.exp(scale * c) for c in cosines]


def display(scores: list[float], n: int, shown: set[int] | None = None) -> list[int]:
    """The n best images (ties: lower index first), as a sorted list."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if shown is not None:
        order = [i for i in order if i not in shown]
    return sorted(order[:n])


def pick(
    user: str,
    shown: list[int],
    features: list[list[float]],
    target: int,
    k: int,
    p: float,
    uniforms: list[float],
) -> list[int]:
    """Positions (in ``shown``) of the k liked images."""
    cos = [dot(features[d], features[target]) for d in shown]
    if user == "ideal":
        return sorted(range(len(shown)), key=lambda j: (-cos[j], j))[:k]
    left = list(range(len(shown)))
    chosen = []
    for j in range(k):
        if user == "ransam":
            weights = [((1 + cos[i]) / 2) ** p for i in left]
        else:
            weights = [1.0 for _ in left]
        x = uniforms[j] * sum(weights)
        acc, choice = 0.0, left[-1]
        for i, w in zip(left, weights, strict=True):
            acc += w
            if acc > x:
                choice = i
                break
        chosen.append(choice)
        left.remove(choice)
    return chosen


def kernel(a: list[float], b: list[float], sigma: float) -> float:
    return math.exp(-(1 - dot(a, b)) / sigma)


def update(
    scores: list[float],
    features: list[list[float]],
    shown: list[int],
    liked: list[int],
    sigma: float,
) -> list[float]:
    """s_i <- s_i e(i,l) / (e(i,l) + sum_{d in D'} e(i,d)) per like, then s / max, floored."""
    likes = [shown[j] for j in liked]
    others = [d for d in shown if d not in likes]
    out = list(scores)
    for i in range(len(out)):
        for like in likes:
            e_l = kernel(features[i], features[like], sigma)
            rest = 0.0
            for d in others:
                rest += kernel(features[i], features[d], sigma)
            out[i] *= e_l / (e_l + rest)
    top = max(max(out), FLOOR)
    return [max(s / top, FLOOR) for s in out]


def search(
    cosines: list[float],
    features: list[list[float]],
    target: int,
    user: str,
    *,
    n: int,
    rounds: int,
    k: int,
    p: float,
    sigma: float,
    scale: float,
    uniforms: list[list[float]],
    exclude_shown: bool = False,
) -> int:
    """The display (0..rounds) that holds the target, or -1."""
    scores = start(cosines, scale)
    seen: set[int] = set()
    for t in range(rounds + 1):
        shown = display(scores, n, seen if exclude_shown else None)
        if target in shown:
            return t
        if t == rounds:
            break
        seen |= set(shown)
        liked = pick(user, shown, features, target, k, p, uniforms[t])
        scores = update(scores, features, shown, liked, sigma)
    return -1
