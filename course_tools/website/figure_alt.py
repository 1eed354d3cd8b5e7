"""Alt text for the website's figures, written from each matplotlib figure's titles and axes.

The site build runs :func:`install` in every kernel before the notebook's first cell. From
then on each figure the inline backend shows carries ``{"alt": ...}`` in its ``image/png``
metadata, which the page template writes into the ``<img>`` tag. Learners never run this.
"""

from __future__ import annotations

from typing import Any

GENERIC = "A figure without a title or axis labels"


def _axes_text(ax: Any) -> str:
    """One sentence for one plot: its title, axis labels and legend entries."""
    title = next((t for t in (ax.get_title(), ax.get_title("left"), ax.get_title("right")) if t), "")
    bits = [title] if title else []
    if ax.get_xlabel():
        bits.append(f"x axis: {ax.get_xlabel()}")
    if ax.get_ylabel():
        bits.append(f"y axis: {ax.get_ylabel()}")
    legend = ax.get_legend()
    if legend is not None:
        labels = [t.get_text() for t in legend.get_texts() if t.get_text()]
        if labels:
            bits.append("legend: " + ", ".join(labels))
    return "; ".join(bits)


def describe(fig: Any) -> str:
    """The alt text of a figure: its suptitle, then one sentence per plot that has text."""
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    plots = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    texts = [t for t in (_axes_text(ax) for ax in plots) if t]
    if not suptitle and not texts:
        return GENERIC
    kind = f"{len(plots)} plots" if len(plots) > 1 else "a plot"
    head = f"Figure ({kind})" + (f": {suptitle}" if suptitle else "")
    return ". ".join([head] + texts) + "."


def _with_alt(print_png: Any) -> Any:
    """Wrap the inline backend's PNG printer so that it also returns the alt text."""
    def png_and_alt(fig: Any) -> Any:
        data = print_png(fig)
        return None if data is None else (data, {"alt": describe(fig)})

    png_and_alt.course_alt = True
    return png_and_alt


def _wrap_png_formatter(shell: Any) -> None:
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    try:
        current = formatter.lookup_by_type(Figure)
    except KeyError:
        return
    if not getattr(current, "course_alt", False):
        formatter.for_type(Figure, _with_alt(current))


def install() -> None:
    """Give every figure alt text from now on (the inline backend is set up first)."""
    import matplotlib.pyplot as plt
    from IPython import get_ipython

    plt.close(plt.figure())  # loads the inline backend, which registers its PNG formatter

    shell = get_ipython()
    _wrap_png_formatter(shell)
    shell.events.register("pre_run_cell", lambda *args: _wrap_png_formatter(shell))  # after a re-registration
