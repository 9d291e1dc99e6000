"""make setup's hard links of torch's wheels into .venv-lavis (kisbench/tools/share_packages.py)."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import pytest

from kisbench.tools import share_packages


def fake_dist(site: Path, name: str, version: str, package: str) -> Path:
    """A distribution as pip leaves it: a package, a script in ../../../bin, a RECORD."""
    (site / package).mkdir(parents=True)
    module = site / package / "__init__.py"
    module.write_text(f"VERSION = {version!r}\n")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    bin_dir = site.parents[2] / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / f"{package}-run").write_text("#!/venv/bin/python\n")
    (info / "RECORD").write_text(
        f"{package}/__init__.py,,\n../../../bin/{package}-run,,\n{info.name}/METADATA,,\n"
        f"{info.name}/RECORD,,\n"
    )
    return module


def versions(site: Path) -> dict[str, str]:
    return {d.metadata["Name"]: d.version for d in metadata.distributions(path=[str(site)])}


@pytest.fixture
def venvs(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "a" / "lib" / "python3.11" / "site-packages"
    target = tmp_path / "b" / "lib" / "python3.11" / "site-packages"
    target.mkdir(parents=True)
    source.mkdir(parents=True)
    return source, target


def test_links_matching_distributions_and_nothing_else(venvs: tuple[Path, Path]) -> None:
    source, target = venvs
    torch_file = fake_dist(source, "torch", "2.14.1", "torch")
    fake_dist(source, "nvidia-cublas", "13.1", "nvidia_cublas")
    fake_dist(source, "transformers", "5.24.0", "transformers")  # not shared: other pins

    linked = share_packages.link_packages(source, target)

    assert linked == ["nvidia-cublas==13.1", "torch==2.14.1"]
    assert versions(target) == {"torch": "2.14.1", "nvidia-cublas": "13.1"}
    copy = target / "torch" / "__init__.py"
    assert os.stat(copy).st_ino == os.stat(torch_file).st_ino  # a link, not a copy
    assert not (target.parents[2] / "bin" / "torch-run").exists()  # names the other venv
    assert not (target / "transformers").exists()


def test_a_distribution_the_target_has_is_left_alone(venvs: tuple[Path, Path]) -> None:
    source, target = venvs
    fake_dist(source, "torch", "2.14.1", "torch")
    own = fake_dist(target, "torch", "2.9.1", "torch")

    assert share_packages.link_packages(source, target) == []
    assert own.read_text() == "VERSION = '2.9.1'\n"
    assert versions(target) == {"torch": "2.9.1"}


def test_a_failed_link_leaves_no_distribution_pip_would_trust(
    venvs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    source, target = venvs
    fake_dist(source, "torch", "2.14.1", "torch")
    real_link = os.link
    calls = []

    def link_once(src: Path, dst: Path) -> None:
        if calls:
            raise OSError(18, "Invalid cross-device link")
        calls.append(dst)
        real_link(src, dst)

    monkeypatch.setattr(share_packages.os, "link", link_once)
    with pytest.raises(OSError):
        share_packages.link_packages(source, target)
    assert versions(target) == {}
    assert not any(p.is_file() for p in target.rglob("*"))
    # The command line reports it and lets pip install its own copies.
    calls.append("again")
    assert share_packages.main([str(source.parents[2]), str(target.parents[2])]) == 0
    assert "not linked" in capsys.readouterr().out
    assert versions(target) == {}
