"""Hard-link torch and its CUDA libraries from .venv into .venv-lavis before pip fills it.

`make setup` builds two venvs that pin the same torch (2.14.1, a CUDA build from PyPI). Installed
twice, torch, triton and the nvidia-* / cuda-* wheels cost 5.3 GB more disk; a CI machine with
12 GB free ran out in the middle of the second install. Linked, the second copy costs nothing,
and pip in the second venv finds the same versions installed and skips them. Where the pins
differ, pip replaces the linked files as it would any other (removing a hard link leaves the
other venv's file as it was). Standard library only: it runs before anything else is installed.

    python -m kisbench.tools.share_packages .venv .venv-lavis
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from importlib import metadata
from pathlib import Path

#: The large binary wheels that both venvs take from torch's own metadata.
PATTERNS = ("torch", "torchvision", "triton", "nvidia-*", "cuda-*")


def site_packages(venv: Path) -> Path:
    """The site-packages folder of a venv made by this machine's Python."""
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise SystemExit(f"error: {venv} has {len(found)} site-packages folders, expected one")
    return found[0]


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(site: Path) -> dict[str, metadata.Distribution]:
    """The distributions in one site-packages folder, by canonical name."""
    return {canonical(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}


def link_packages(source: Path, target: Path, patterns: tuple[str, ...] = PATTERNS) -> list[str]:
    """Hard-link the distributions in ``source`` whose names match ``patterns`` into ``target``.

    Both are site-packages folders. A distribution the target already has is left alone, and
    so is every file a distribution installs outside its site-packages (scripts in bin/, which
    name their own venv's Python). Returns the ``name==version`` of each linked distribution.
    """
    present = installed(target)
    linked = []
    for name, dist in sorted(installed(source).items()):
        if name in present or not any(fnmatch.fnmatch(name, p) for p in patterns):
            continue
        pairs = []
        for record in dist.files or []:
            file = Path(dist.locate_file(record))
            try:
                relative = file.resolve().relative_to(source.resolve())
            except ValueError:
                continue
            if file.is_file():
                pairs.append((file, target / relative))
        # The .dist-info last: until it is there, pip does not count the distribution as
        # installed, so a link that fails half-way leaves nothing pip would trust.
        pairs.sort(key=lambda pair: ".dist-info" in str(pair[1]))
        made: list[Path] = []  # files and folders, in the order made
        try:
            for file, destination in pairs:
                if destination.exists():
                    continue
                missing = [p for p in destination.parents if not p.exists()]
                destination.parent.mkdir(parents=True, exist_ok=True)
                made.extend(reversed(missing))
                os.link(file, destination)
                made.append(destination)
        except OSError:
            for path in reversed(made):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
            raise
        linked.append(f"{name}=={dist.version}")
    return linked


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    source, target = (site_packages(Path(v)) for v in argv)
    try:
        linked = link_packages(source, target)
    except OSError as err:
        # Another file system (no hard links): pip installs its own copies, as before.
        print(f"share_packages: not linked ({err}); pip installs its own copies")
        return 0
    print(f"share_packages: {len(linked)} distributions linked from {argv[0]} into {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
