"""What every figure of the tools shares (hpcfed.record.figures): nothing written for a figure with
nothing drawn, human units on MACs axes, a style per line that does not repeat soon."""
from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpcfed.record.figures import GUIDE, drawn, macs_axis, save, style


def figure():
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def test_a_figure_with_nothing_drawn_is_not_written_and_says_why(tmp_path, capsys):
    fig, ax = figure()
    ax.plot([], [], label="a run without evaluations")
    ax.axhline(50, gid=GUIDE)                     # a target line alone is no data
    ax.scatter([], [])
    stale = tmp_path / "empty.png"
    stale.write_bytes(b"an older figure")
    assert not drawn(fig) and save(fig, stale, "nothing to show here") is None
    assert not stale.exists() and "empty.png: not written: nothing to show here" in capsys.readouterr().err
    for draw in (lambda a: a.plot([1], [2]), lambda a: a.scatter([1], [2]), lambda a: a.bar([0], [3]),
                 lambda a: a.errorbar([1], [2], yerr=[0.5])):
        fig, ax = figure()
        draw(ax)
        assert drawn(fig) and save(fig, tmp_path / "some.png", "") == tmp_path / "some.png"


def test_macs_axes_read_in_human_units_and_line_styles_repeat_late():
    fig, ax = figure()
    ax.plot([5e5, 4.2e6], [1, 2])
    ax.set_xscale("log")
    macs_axis(ax.xaxis)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "1 M" in labels and all("e" not in t and "^" not in t for t in labels), labels
    assert len({tuple(style(k).values()) for k in range(28)}) == 28
