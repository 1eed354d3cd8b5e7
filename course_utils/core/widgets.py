"""Notebooks 02, 05b and others: sliders for plots, move a value instead of editing code, with a static fallback.

``slider_plot(plot_fn, radius=(0.5, 1.5, 0.05, 1.0))`` shows ``plot_fn(radius=...)`` under a
slider when ipywidgets is available (JupyterLab, Colab). Where it is not, or where the
environment variable ``COURSE_WIDGETS=0`` is set (the test run, the static website build),
``plot_fn`` is called once per static setting (the defaults unless ``static=`` says otherwise)
and a line says so.

A parameter spec is either

- a tuple ``(min, max, step, default)``: an ``IntSlider`` if all four are ints, else a ``FloatSlider``;
- a list of values: a ``SelectionSlider`` over them, starting at the first.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

OFF_VALUES = {"0", "false", "no", "off"}
RangeSpec = tuple[float, float, float, float]
ParamSpec = RangeSpec | list[Any]


def widgets_enabled() -> bool:
    """False where ``COURSE_WIDGETS`` is ``0``/``false``/``no``/``off``; ipywidgets may still be missing."""
    return os.environ.get("COURSE_WIDGETS", "1").strip().lower() not in OFF_VALUES


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_spec(name: str, spec: Any) -> Any:
    """Validate one parameter spec and return its default value."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name}: the list of values is empty")
        return spec[0]
    if not (isinstance(spec, tuple) and len(spec) == 4 and all(_is_number(v) for v in spec)):
        raise ValueError(f"{name}: expected (min, max, step, default) numbers or a list of values, got {spec!r}")
    lo, hi, step, default = spec
    if lo >= hi:
        raise ValueError(f"{name}: min must be below max, got min={lo}, max={hi}")
    if step <= 0:
        raise ValueError(f"{name}: step must be positive, got {step}")
    if not lo <= default <= hi:
        raise ValueError(f"{name}: default {default} is outside [{lo}, {hi}]")
    return default


def _check_value(name: str, spec: ParamSpec, value: Any) -> None:
    if isinstance(spec, list):
        if value not in spec:
            raise ValueError(f"static value {name}={value!r} is not one of {spec}")
    elif not (_is_number(value) and spec[0] <= value <= spec[1]):
        raise ValueError(f"static value {name}={value!r} is outside [{spec[0]}, {spec[1]}]")


def _check_signature(plot_fn: Callable[..., Any], names: Sequence[str]) -> None:
    params = inspect.signature(plot_fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [n for n in names if n not in params]
        if unknown:
            raise ValueError(f"{getattr(plot_fn, '__name__', 'plot_fn')} has no parameter(s) {unknown}; "
                             f"its parameters are {list(params)}")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in names
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise ValueError(f"give a slider spec (or a default in plot_fn) for parameter(s) {missing}")


def _make_slider(widgets: Any, name: str, spec: ParamSpec) -> Any:
    common = {"description": name, "continuous_update": False, "style": {"description_width": "initial"}}
    if isinstance(spec, list):
        return widgets.SelectionSlider(options=spec, value=spec[0], **common)
    lo, hi, step, default = spec
    if all(isinstance(v, int) for v in spec):
        return widgets.IntSlider(min=lo, max=hi, step=step, value=default, **common)
    decimals = max(max(0, -Decimal(str(v)).normalize().as_tuple().exponent) for v in (lo, step, default))
    return widgets.FloatSlider(min=lo, max=hi, step=step, value=default, readout_format=f".{decimals}f", **common)


def slider_plot(
    plot_fn: Callable[..., Any],
    static: Sequence[Mapping[str, Any]] | None = None,
    **params: ParamSpec,
) -> Any | None:
    """Show ``plot_fn(**values)`` under one slider per parameter, or draw it statically.

    Args:
        plot_fn: draws one figure (and may print) for keyword arguments named as in ``params``.
        static: the settings drawn when widgets are off, each a dict overriding some defaults;
            ``None`` draws once at the defaults.
        params: ``name=(min, max, step, default)`` or ``name=[value, ...]``, see the module docstring.

    Returns:
        The ``ipywidgets.interactive`` widget, already displayed (assign it, ``w = slider_plot(...)``,
        or Jupyter shows it a second time as the cell's value), or ``None`` on the static path.

    Raises:
        ValueError: a bad spec (min >= max, step <= 0, default outside the range, empty list), a
            name ``plot_fn`` does not take, a required parameter of ``plot_fn`` without a spec, or
            a static value outside its spec.
    """
    if not params:
        raise ValueError("give at least one parameter spec, e.g. radius=(0.5, 1.5, 0.05, 1.0)")
    defaults = {name: _check_spec(name, spec) for name, spec in params.items()}
    _check_signature(plot_fn, list(params))
    settings = [dict(defaults)] if static is None else [{**defaults, **s} for s in static]
    for s in settings:
        for name, value in s.items():
            if name not in params:
                raise ValueError(f"static setting names {name!r}, which has no slider spec; specs: {list(params)}")
            _check_value(name, params[name], value)

    reason = None if widgets_enabled() else "COURSE_WIDGETS=0"
    if reason is None:
        try:
            import ipywidgets
        except ImportError:
            reason = "ipywidgets is not installed"
    if reason is None:
        from IPython.display import display

        def call(**values: Any) -> Any:  # a plain function, so partials and callable objects work too
            return plot_fn(**values)

        # ipywidgets makes a widget for every parameter it sees: show it only the sliders' names
        call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in params])
        sliders = {name: _make_slider(ipywidgets, name, spec) for name, spec in params.items()}
        widget = ipywidgets.interactive(call, **sliders)  # calls plot_fn once at the defaults
        display(widget)
        return widget

    shown = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in settings)
    print(f"static figure ({shown}): in JupyterLab or Colab, move the slider instead (widgets are off here: {reason})")
    for s in settings:
        plot_fn(**s)
    return None
