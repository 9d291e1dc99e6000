"""The ``groups`` section: named lists of model keys (``thesis``, ``competition``, ...), which
`kisbench models list` and `kisbench sweep` expand.

DVC's stage matrix (``matrix: model: ${run.models}`` in dvc.yaml) takes ``run.models`` as it
is and cannot expand a name, so ``run.models`` holds model keys only; a group name there is
an error that says what to run instead (:func:`check`, which `kisbench.config.parse` calls on
every file it reads). Only the tools read this section, and no stage lists it in its
``params``: editing a group re-runs nothing.

Besides the groups of the file there is one built-in group, :data:`OPEN_CLIP_ALL`: every
image-text model of the installed open_clip, de-duplicated by weight file
(`kisbench.tools.catalog`); its entries reach ``models`` through
`kisbench models add open_clip_all`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kisbench.config.core import NAME
from kisbench.config.schema import hint, show
from kisbench.errors import InputError

OPEN_CLIP_ALL = "open_clip_all"
BUILTIN = (OPEN_CLIP_ALL,)


def _groups(raw: Any, problems: list[str]) -> dict[str, list[str]]:
    """The section's shape: names like model keys, each a non-empty list of strings."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"groups: expected a mapping of group names to model keys, got {show(raw)}")
        return {}
    out: dict[str, list[str]] = {}
    for name, members in raw.items():
        where = f"groups.{name}"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append(f"{where}: a group name uses only a-z, 0-9 and _ (as model keys)")
            continue
        if name in BUILTIN:
            problems.append(
                f"{where}: {name!r} is a built-in group (every open_clip model); pick another name"
            )
            continue
        if not isinstance(members, list) or not members:
            problems.append(f"{where}: expected a non-empty list of keys, got {show(members)}")
            continue
        bad = [m for m in members if not isinstance(m, str)]
        if bad:
            problems.append(f"{where}: expected model keys (strings), got {show(bad[0])}")
            continue
        out[name] = list(members)
    return out


def group_names(values: Mapping[str, Any]) -> list[str]:
    """The groups of a parsed file and the built-in ones."""
    return [*values.get("groups", {}), *BUILTIN]


def instead(name: str, groups: Mapping[str, list[str]]) -> str:
    """What to write or run instead of group ``name`` in run.models."""
    if name == OPEN_CLIP_ALL:
        return (
            f"run `kisbench models add {name}` (writes its entries into `models`), then "
            f"`kisbench sweep {name}`"
        )
    keys = ", ".join(groups[name])
    return (
        f"run `kisbench sweep {name}` (one model at a time), or write its keys: "
        f"run.models: [{keys}] (`kisbench models list {name}`)"
    )


def check(values: Mapping[str, Any], problems: list[str]) -> None:
    """Across sections: every member is a model key, no group is named like a model, and
    run.models and reset.models name no group (DVC's matrix cannot expand one)."""
    groups: Mapping[str, list[str]] = values.get("groups", {})
    models: Mapping[str, Any] = values.get("models", {})
    for name, members in groups.items():
        if name in models:
            problems.append(f"groups.{name}: {name!r} is also a model key; rename the group")
        for m in members:
            if m not in models:
                problems.append(f"groups.{name}: unknown model key {m!r}{hint(m, list(models))}")
    names = group_names(values)
    for section, listed in (
        ("run.models", getattr(values.get("run"), "models", [])),
        ("reset.models", getattr(values.get("reset"), "models", [])),
    ):
        for m in listed:
            if m in names and m not in models:
                problems.append(
                    f"{section} names the group {m!r}, but DVC's stage matrix needs model keys: "
                    + instead(m, groups)
                )


def expand(
    names: Iterable[str],
    groups: Mapping[str, list[str]],
    models: Mapping[str, Any],
    builtin: Mapping[str, Callable[[], list[str]]] | None = None,
) -> list[str]:
    """Model keys and group names to model keys, in the order given, each key once.
    ``builtin`` maps a built-in group to the function that lists its keys (the catalog is
    the tools' business: this layer cannot import open_clip)."""
    builtin = builtin or {}
    out: dict[str, None] = {}
    for name in names:
        if name in models:
            out[name] = None
        elif name in groups:
            out |= dict.fromkeys(groups[name])
        elif name in builtin:
            out |= dict.fromkeys(builtin[name]())
        else:
            known = [*models, *groups, *BUILTIN]
            raise InputError(
                f"{name!r} is neither a model key nor a group{hint(name, known)}; groups: "
                f"{', '.join([*groups, *BUILTIN])}"
            )
    return list(out)


# Found by name (`kisbench.config`): the section of named lists, and the check across
# sections that parse() runs once every section is read.
ENTRIES: dict[str, Callable[[Any, list[str]], dict[str, Any]]] = {"groups": _groups}
CHECKS: tuple[Callable[[Mapping[str, Any], list[str]], None], ...] = (check,)
