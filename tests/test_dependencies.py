"""Dependencies: floors above known vulnerabilities, the tested versions pinned (issue 9, item 10).

What is checked is what runs: the versions installed in this environment
(``importlib.metadata``) against the floors, and against ``constraints.txt``,
the exact versions ``make install`` (and so CI) installs.
"""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# Package -> the first version without the known vulnerabilities that concern us,
# versions that have them, and which.
FLOORS = {
    "twisted": (
        "24.7.0",
        ("23.10.0", "24.3.0"),
        "CVE-2024-41671 (HTTP pipelining answered out of order), CVE-2024-41810",
    ),
    "cryptography": ("44.0.1", ("42.0.0", "44.0.0"), "CVE-2024-12797 (OpenSSL in its wheels)"),
}
TESTED_MAJOR = {"pyiso8583": 4}  # the major version the suite runs on


def _setup() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _requirements(text: str) -> dict[str, Requirement]:
    lines = (line.strip() for line in text.splitlines())
    found = (Requirement(line) for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(r.name): r for r in found}


def install_requires() -> dict[str, Requirement]:
    return _requirements(_setup()["options"]["install_requires"])


def extra(name: str) -> dict[str, Requirement]:
    return _requirements(_setup()["options.extras_require"][name])


def constraints() -> dict[str, Version]:
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pinned[canonicalize_name(name)] = Version(version)
    return pinned


def installed(name: str) -> Version:
    return Version(metadata.version(name))


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_installed_version_is_above_the_vulnerability_floor(name: str) -> None:
    floor, _, why = FLOORS[name]
    assert installed(name) >= Version(floor), f"{name} {installed(name)}: {why}"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_setup_allows_no_vulnerable_version(name: str) -> None:
    floor, vulnerable, why = FLOORS[name]
    specifier = install_requires()[name].specifier
    assert [v for v in vulnerable if specifier.contains(v)] == [], why
    assert specifier.contains(floor)


@pytest.mark.parametrize(("name", "major"), sorted(TESTED_MAJOR.items()))
def test_pinned_to_the_major_version_tested(name: str, major: int) -> None:
    specifier = install_requires()[name].specifier
    assert installed(name).major == major
    assert specifier.contains(str(installed(name)))
    assert not specifier.contains(f"{major + 1}.0.0"), "the next major version is not tested"


def test_every_constrained_package_meets_the_requirements() -> None:
    """constraints.txt cannot pin what setup.cfg refuses (a floor, a major version)."""
    pinned = constraints()
    wanted = {**install_requires(), **extra("test"), **extra("prod")}
    assert set(wanted) <= set(pinned), "constraints.txt misses a requirement"
    for name, requirement in wanted.items():
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]}"


def test_installed_versions_are_the_constrained_ones() -> None:
    """What ``make install`` put here is what constraints.txt says (and what was tested)."""
    differ = {
        name: (str(installed(name)), str(version))
        for name, version in constraints().items()
        if _is_installed(name) and installed(name) != version
    }
    assert differ == {}


def test_production_gets_psycopg2_from_source_not_the_binary_wheel() -> None:
    """The binary wheel bundles its own libpq and OpenSSL, which system updates miss."""
    assert "psycopg2-binary" not in install_requires()
    assert "psycopg2" in extra("prod") and "psycopg2-binary" not in extra("prod")
    assert "psycopg2-binary" in extra("test")


def _is_installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True
