"""pyproject.toml, environment.yml, the README and .ci/run must agree."""

import re
import tomllib

import yaml


def pyproject_pins(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return dict(r.split("==") for r in reqs)


def conda_pins(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(r.split("==") for r in pip if "==" in r)


def test_every_dependency_is_pinned(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    unpinned = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r)]
    assert not unpinned, f"pin these exactly: {unpinned}"
    assert "torch==2.13.0" in reqs


def test_environment_yml_matches_pyproject(repo):
    assert conda_pins(repo) == pyproject_pins(repo)


def test_environment_yml_installs_the_course_package(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "--editable ." in pip
    assert "python=3.11" in env["dependencies"]


def test_ci_runs_the_readme_test_command(repo):
    readme = (repo / "README.md").read_text()
    commands = re.findall(r"^make (\w+)\s*$", readme, re.MULTILINE)
    assert "test" in commands and "lab" in commands, "the README should give `make lab` and `make test`"
    ci = [line.strip() for line in (repo / ".ci/run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "make test", f".ci/run should end by running the README's test command, not {ci[-1]!r}"
