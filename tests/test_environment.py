"""The pins: requirements.txt is the truth, environment.yml says the same for conda users."""

import re
from importlib.metadata import version

import yaml

from autograder.host.course import ROOT


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            assert ver, f"requirements.txt: {line!r} is not pinned exactly"
            pins[name.lower()] = ver
    return pins


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {name.lower(): ver for name, _, ver in (p.partition("==") for p in pip)}


def test_environment_yml_matches_requirements():
    assert conda_pins() == requirement_pins()


def test_torch_is_pinned_to_the_cpu_build_version():
    assert requirement_pins()["torch"] == "2.13.0"


def test_installed_versions_are_the_pinned_ones():
    for name, pinned in requirement_pins().items():
        installed = version(re.sub(r"\[.*\]", "", name))
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, pinned {pinned}"
