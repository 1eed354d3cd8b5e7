import functools
import sys

import matplotlib.pyplot as plt
import pytest

from course_utils.core.widgets import slider_plot, widgets_enabled

ipywidgets = pytest.importorskip("ipywidgets")


class Recorder:
    """A plot function that draws a line and remembers every call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, radius: float, steps: int = 3, language: str = "Irish") -> None:
        self.calls.append({"radius": radius, "steps": steps, "language": language})
        _, ax = plt.subplots()
        ax.plot(range(steps), [radius**k for k in range(steps)])
        plt.close("all")


SPECS = {"radius": (0.5, 1.5, 0.05, 1.0), "steps": (1, 20, 1, 5), "language": ["Irish", "Dutch", "Slovak"]}


@pytest.fixture
def interactive_env(monkeypatch):
    monkeypatch.delenv("COURSE_WIDGETS", raising=False)


def test_interactive_sliders_have_the_right_ranges_and_call_plot_fn(interactive_env):
    plot = Recorder()
    widget = slider_plot(plot, **SPECS)
    assert isinstance(widget, ipywidgets.interactive)
    radius, steps, language, out = widget.children
    assert isinstance(out, ipywidgets.Output)
    assert isinstance(radius, ipywidgets.FloatSlider)
    assert (radius.min, radius.max, radius.step, radius.value) == (0.5, 1.5, 0.05, 1.0)
    assert radius.readout_format == ".2f"
    assert isinstance(steps, ipywidgets.IntSlider)
    assert (steps.min, steps.max, steps.step, steps.value) == (1, 20, 1, 5)
    assert isinstance(language, ipywidgets.SelectionSlider)
    assert list(language.options) == ["Irish", "Dutch", "Slovak"] and language.value == "Irish"
    assert all(not w.continuous_update for w in (radius, steps, language))
    assert plot.calls == [{"radius": 1.0, "steps": 5, "language": "Irish"}]  # drawn once at the defaults

    radius.value = 1.25
    steps.value = 12
    language.value = "Slovak"
    assert plot.calls[-3:] == [{"radius": 1.25, "steps": 5, "language": "Irish"},
                               {"radius": 1.25, "steps": 12, "language": "Irish"},
                               {"radius": 1.25, "steps": 12, "language": "Slovak"}]
    assert widget.kwargs == {"radius": 1.25, "steps": 12, "language": "Slovak"}


@pytest.mark.parametrize("off", ["0", "false", "OFF"])
def test_static_path_calls_plot_fn_at_the_defaults(monkeypatch, capsys, off):
    monkeypatch.setenv("COURSE_WIDGETS", off)
    assert not widgets_enabled()
    plot = Recorder()
    assert slider_plot(plot, **SPECS) is None
    assert plot.calls == [{"radius": 1.0, "steps": 5, "language": "Irish"}]
    printed = capsys.readouterr().out
    assert "static figure (radius=1.0, steps=5, language=Irish)" in printed and "COURSE_WIDGETS=0" in printed


def test_static_path_draws_each_static_setting(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WIDGETS", "0")
    plot = Recorder()
    slider_plot(plot, static=[{"radius": 0.8}, {"radius": 1.2, "language": "Dutch"}], **SPECS)
    assert plot.calls == [{"radius": 0.8, "steps": 5, "language": "Irish"},
                          {"radius": 1.2, "steps": 5, "language": "Dutch"}]
    assert "radius=0.8, steps=5, language=Irish; radius=1.2" in capsys.readouterr().out


def test_without_ipywidgets_the_static_path_runs(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_WIDGETS", raising=False)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    plot = Recorder()
    assert slider_plot(plot, radius=(0.1, 2.0, 0.1, 0.3)) is None
    assert plot.calls == [{"radius": 0.3, "steps": 3, "language": "Irish"}]
    assert "ipywidgets is not installed" in capsys.readouterr().out


@pytest.mark.parametrize(("specs", "message"), [
    ({"radius": (1.5, 0.5, 0.1, 1.0)}, "min must be below max, got min=1.5, max=0.5"),
    ({"radius": (0.5, 0.5, 0.1, 0.5)}, "min must be below max"),
    ({"radius": (0.5, 1.5, 0.0, 1.0)}, "step must be positive"),
    ({"radius": (0.5, 1.5, 0.1, 2.0)}, r"default 2.0 is outside \[0.5, 1.5\]"),
    ({"radius": (0.5, 1.5, 0.1)}, r"expected \(min, max, step, default\)"),
    ({"radius": []}, "the list of values is empty"),
    ({"radius": (0.5, 1.5, 0.1, 1.0), "rho": (0.5, 1.5, 0.1, 1.0)}, r"has no parameter\(s\) \['rho'\]"),
    ({"steps": (1, 9, 1, 3)}, r"parameter\(s\) \['radius'\]"),
    ({}, "at least one parameter"),
])
@pytest.mark.parametrize("env", ["0", "1"])
def test_bad_specs_raise_on_both_paths(monkeypatch, specs, message, env):
    monkeypatch.setenv("COURSE_WIDGETS", env)
    plot = Recorder()
    with pytest.raises(ValueError, match=message):
        slider_plot(plot, **specs)
    assert plot.calls == []


@pytest.mark.parametrize(("static", "message"), [
    ([{"radius": 3.0}], r"radius=3.0 is outside \[0.5, 1.5\]"),
    ([{"language": "Welsh"}], "is not one of"),
    ([{"rho": 1.0}], "has no slider spec"),
])
def test_bad_static_settings_raise(monkeypatch, static, message):
    monkeypatch.setenv("COURSE_WIDGETS", "0")
    with pytest.raises(ValueError, match=message):
        slider_plot(Recorder(), static=static, **SPECS)


def test_a_partial_works_as_plot_fn(interactive_env):
    calls = []

    def draw(scale: float, offset: float, label: str = "") -> None:
        calls.append((scale, offset))

    widget = slider_plot(functools.partial(draw, offset=2.0), scale=(0, 10, 2, 4))
    assert [type(w).__name__ for w in widget.children] == ["IntSlider", "Output"]
    widget.children[0].value = 8
    assert calls == [(4, 2.0), (8, 2.0)]
