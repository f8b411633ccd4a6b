"""The report's figures, drawn with matplotlib and returned as inline SVG text.

Each public function takes plain lists (already read from the report dict by
:mod:`.html`) and returns an ``<svg>`` element ready to paste into HTML:

* :func:`lift_over_looks`: the cumulative lift of each treatment across looks,
  its confidence band, the zero line and which way is better;
* :func:`lift_at_look`: the same for a single look (an ``expc analyze``
  report), one point and interval per treatment;
* :func:`estimates_over_looks` / :func:`estimates_at_look`: each variant's rate
  or mean, with its interval when the report has one;
* :func:`sample_ratio`: each arm's observed share per look against the planned
  share, with the SRM p-value per look against its threshold;
* :func:`forest`: one metric by one segment attribute, each segment's lift
  per treatment with its interval, the overall lift as a dashed line, zero.

Rendering rules: matplotlib is imported inside the functions (a report is the
only place it is needed) and only through :class:`matplotlib.figure.Figure`
with the SVG canvas, so no global backend is chosen and pyplot's state is never
touched; settings live in an ``rc_context``. Output is deterministic: a fixed
``svg.hashsalt``, no date, the metadata block removed, text kept as text
(``svg.fonttype = 'none'``, so it uses the page's fonts and stays searchable).
Element ids get a per-figure prefix (several SVGs share one HTML page), the
XML prologue and namespace URLs are dropped (HTML parses inline SVG without
them; the page then references no URL at all), and the root gets a
``viewBox`` with a fluid width.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .format import cut

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "CONTROL_COLOR",
    "estimates_at_look",
    "estimates_over_looks",
    "forest",
    "lift_at_look",
    "lift_over_looks",
    "sample_ratio",
    "variant_colors",
]

CONTROL_COLOR = "#6e7781"
# treatments: blue, orange, purple, pink, teal, brown; never the green / red that mean ship / roll back
TREATMENT_COLORS = ["#0969da", "#d4640b", "#8250df", "#bf3989", "#1b7c83", "#7d4e00"]
INK = "#1f2328"
MUTED = "#57606a"
GRID = "#d8dee4"
FONT_STACK = ("system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, "
              "'Liberation Sans', 'DejaVu Sans', sans-serif")

_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "expc-report",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 10,
    "axes.edgecolor": GRID,
    "axes.labelcolor": MUTED,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.major.size": 0,
    "ytick.major.size": 0,
    "legend.frameon": False,
    "legend.fontsize": 9.5,
    "path.simplify": False,
}

Series = Sequence[float | None]


def variant_colors(ids: Sequence[str]) -> dict[str, str]:
    """A stable colour per variant: the control (first id) grey, treatments from a colour-blind-safe set."""
    out = {}
    for i, v in enumerate(ids):
        out[v] = CONTROL_COLOR if i == 0 else TREATMENT_COLORS[(i - 1) % len(TREATMENT_COLORS)]
    return out


# ================================================================== helpers


def _f(x: Any) -> float:
    """None (a missing number in the report) becomes NaN, which matplotlib leaves as a gap."""
    if x is None:
        return math.nan
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _arr(xs: Series) -> list[float]:
    return [_f(x) for x in xs]


def _value_formatter(kind: str, signed: bool, axis: Any):
    """Tick labels with as many decimals as the tick step needs: percent (points) for proportions."""
    from matplotlib.ticker import FuncFormatter

    scale = 100.0 if kind == "proportion" else 1.0

    def fmt(v: float, _pos: Any) -> str:
        locs = [x * scale for x in axis.get_majorticklocs()]
        step = min((abs(b - a) for a, b in zip(locs, locs[1:]) if b != a), default=1.0)
        decimals = next((d for d in range(7) if abs(round(step, d) - step) <= step * 1e-6), 6)
        x = v * scale
        if abs(x) < step * 1e-6:
            return "0" if signed else f"{0:.{decimals}f}" + ("%" if kind == "proportion" else "")
        text = f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"
        return text + ("%" if kind == "proportion" and not signed else "")

    return FuncFormatter(fmt)


HALF = (5.2, 2.9)  # inches: a figure half the page wide (two side by side)
FULL_WIDTH = 10.4  # inches: a figure the width of the page


def _figure(width: float, height: float, rows: int = 1, height_ratios: list[float] | None = None,
            left: float = 0.78, bottom: float = 0.5, top: float = 0.12, right: float = 0.12):
    """A figure with fixed margins in inches (a layout engine costs half the drawing time)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=0.12)
    if rows == 1:
        return fig, [fig.add_subplot()]
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": height_ratios or [1] * rows})
    return fig, list(axes)


def _label_margin(labels: Sequence[str]) -> float:
    """Left margin (inches) that fits the longest y tick label."""
    return 0.25 + 0.075 * max((len(x) for x in labels), default=4)


def _style_axes(ax: Any) -> None:
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.margins(x=0.02)


def _better_note(ax: Any, direction: str, horizontal: bool = False) -> None:
    """A small 'better ↑' note on the axis where the good direction lies."""
    up = direction != "decrease"
    if horizontal:
        text = "better →" if up else "← better"
        ax.annotate(text, xy=(1.0 if up else 0.0, 1.0), xycoords="axes fraction", ha="right" if up else "left",
                    va="bottom", fontsize=8.5, color=MUTED)
        return
    ax.annotate(f"better {'↑' if up else '↓'}", xy=(0.0, 1.0 if up else 0.0), xycoords="axes fraction",
                xytext=(4, -4 if up else 4), textcoords="offset points", ha="left",
                va="top" if up else "bottom", fontsize=8.5, color=MUTED,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})


def _int_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


def _to_svg(fig: Any, prefix: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return _clean_svg(buf.getvalue(), prefix)


def _clean_svg(svg: str, prefix: str) -> str:
    """Inline-ready SVG: no prologue, metadata or namespace URLs; ids prefixed; fluid width."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg, count=0)
    svg = svg.replace("xlink:href=", "href=")
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})" if m.group(1) in ids else m.group(0),
                 svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"' if m.group(1) in ids else m.group(0),
                 svg)
    svg = re.sub(r"font-family: '?DejaVu Sans'?, sans-serif", f"font-family: {FONT_STACK}", svg)
    svg = re.sub(r'<svg\s+width="[^"]*"\s+height="[^"]*"', '<svg class="plot" role="img"', svg, count=1)
    return svg.strip() + "\n"


LEGEND_COLS = 4


def _legend_top(entries: float) -> float:
    """Top margin (inches) for a legend of ``entries`` items above the axes, LEGEND_COLS per row."""
    return 0.36 + 0.2 * (max(1, math.ceil(entries / LEGEND_COLS)) - 1)


def _legend(ax: Any, handles: list[Any], labels: list[str]) -> None:
    """One row of legend above the axes (never over the data)."""
    if handles:
        ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=min(len(labels), LEGEND_COLS),
                  handlelength=1.4, columnspacing=1.1, borderaxespad=0.0, borderpad=0.1, handletextpad=0.5)


# ================================================================== figures


def lift_over_looks(x: Sequence[float], lifts: dict[str, tuple[Series, Series, Series]], colors: dict[str, str],
                    kind: str, direction: str, level: str, prefix: str, x_label: str = "day",
                    margin: Series | None = None) -> str:
    """Cumulative absolute lift of each treatment (``lifts[id] = (lift, lo, hi)`` per look) with its band.

    ``margin``: for a guardrail, the absolute lift at the non-inferiority margin per look (the harm side),
    drawn as a dashed red line.
    """
    import matplotlib
    from matplotlib.patches import Patch

    with matplotlib.rc_context(_RC):
        fig, (ax,) = _figure(*HALF, top=_legend_top(len(lifts) + 2))
        xs = _arr(x)
        ax.axhline(0.0, color=INK, linewidth=1.0, zorder=1)
        handles, labels = [], []
        if margin is not None and any(not math.isnan(v) for v in _arr(margin)):
            (mline,) = ax.plot(xs, _arr(margin), color="#cf222e", linewidth=1.1, linestyle=(0, (4, 3)), zorder=2)
            handles.append(mline)
            labels.append("margin")
        for vid, (y, lo, hi) in lifts.items():
            c = colors.get(vid, TREATMENT_COLORS[0])
            ax.fill_between(xs, _arr(lo), _arr(hi), color=c, alpha=0.16, linewidth=0, zorder=2)
            ax.plot(xs, _arr(lo), color=c, linewidth=0.6, alpha=0.5, zorder=2)
            ax.plot(xs, _arr(hi), color=c, linewidth=0.6, alpha=0.5, zorder=2)
            (line,) = ax.plot(xs, _arr(y), color=c, linewidth=1.8, marker="o", markersize=3.2, zorder=3)
            handles.append(line)
            labels.append(f"{vid} vs control")
        handles.append(Patch(color=INK, alpha=0.16, linewidth=0))
        labels.append(level)
        ax.yaxis.set_major_formatter(_value_formatter(kind, True, ax.yaxis))
        ax.set_ylabel("absolute lift (pp)" if kind == "proportion" else "absolute lift")
        ax.set_xlabel(x_label)
        _int_ticks(ax)
        _style_axes(ax)
        _better_note(ax, direction)
        _legend(ax, handles, labels)
        _headroom(ax, 0.12)
        return _to_svg(fig, prefix)


def lift_at_look(lifts: dict[str, tuple[float | None, float | None, float | None]], colors: dict[str, str],
                 kind: str, direction: str, level: str, prefix: str, margin: float | None = None) -> str:
    """One look: each treatment's absolute lift as a point with its interval, against the zero line.

    ``margin``: for a guardrail, the absolute lift at the non-inferiority margin (dashed red line).
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        ids = list(lifts)
        names = [f"{v} vs control" for v in ids]
        fig, (ax,) = _figure(HALF[0], 0.95 + 0.42 * len(ids), left=_label_margin(names), top=0.3)
        ax.axvline(0.0, color=INK, linewidth=1.0, zorder=1)
        if not math.isnan(_f(margin)):
            ax.axvline(_f(margin), color="#cf222e", linewidth=1.1, linestyle=(0, (4, 3)), zorder=1)
            ax.annotate("margin", xy=(_f(margin), 1.0), xycoords=("data", "axes fraction"), xytext=(3, -2),
                        textcoords="offset points", ha="left", va="top", fontsize=8.5, color="#cf222e")
        for i, vid in enumerate(ids):
            y, lo, hi = (_f(v) for v in lifts[vid])
            c = colors.get(vid, TREATMENT_COLORS[0])
            ax.plot([lo, hi], [i, i], color=c, linewidth=2.4, alpha=0.45, solid_capstyle="round", zorder=2)
            ax.plot([y], [i], "o", color=c, markersize=6, zorder=3)
        ax.set_yticks(range(len(ids)), names)
        ax.set_ylim(len(ids) - 0.4, -0.6)
        ax.xaxis.set_major_formatter(_value_formatter(kind, True, ax.xaxis))
        ax.set_xlabel(f"absolute lift{' (pp)' if kind == 'proportion' else ''}, {level}")
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines["left"].set_visible(False)
        _better_note(ax, direction, horizontal=True)
        _symmetric_x(ax)
        return _to_svg(fig, prefix)


def estimates_over_looks(x: Sequence[float], estimates: dict[str, tuple[Series, Series | None, Series | None]],
                         colors: dict[str, str], kind: str, prefix: str, x_label: str = "day") -> str:
    """Each variant's cumulative rate or mean per look (``(mean, lo, hi)``; the band only when given)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, (ax,) = _figure(*HALF, top=_legend_top(len(estimates)))
        xs = _arr(x)
        handles, labels = [], []
        for vid, (y, lo, hi) in estimates.items():
            c = colors.get(vid, TREATMENT_COLORS[0])
            if lo is not None and hi is not None:
                ax.fill_between(xs, _arr(lo), _arr(hi), color=c, alpha=0.13, linewidth=0, zorder=2)
            (line,) = ax.plot(xs, _arr(y), color=c, linewidth=1.8, marker="o", markersize=3.2, zorder=3)
            handles.append(line)
            labels.append(vid)
        ax.yaxis.set_major_formatter(_value_formatter(kind, False, ax.yaxis))
        ax.set_ylabel("rate" if kind == "proportion" else "mean")
        ax.set_xlabel(x_label)
        _int_ticks(ax)
        _style_axes(ax)
        _legend(ax, handles, labels)
        _headroom(ax, 0.12)
        return _to_svg(fig, prefix)


def estimates_at_look(estimates: dict[str, tuple[float | None, float | None, float | None]],
                      colors: dict[str, str], kind: str, prefix: str) -> str:
    """One look: each variant's rate or mean as a point, with its interval when given."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        ids = list(estimates)
        fig, (ax,) = _figure(HALF[0], 0.95 + 0.42 * len(ids), left=_label_margin(ids), top=0.3)
        for i, vid in enumerate(ids):
            y, lo, hi = (_f(v) for v in estimates[vid])
            c = colors.get(vid, TREATMENT_COLORS[0])
            if not (math.isnan(lo) or math.isnan(hi)):
                ax.plot([lo, hi], [i, i], color=c, linewidth=2.4, alpha=0.45, solid_capstyle="round", zorder=2)
            ax.plot([y], [i], "o", color=c, markersize=6, zorder=3)
        ax.set_yticks(range(len(ids)), ids)
        ax.set_ylim(len(ids) - 0.4, -0.6)
        ax.xaxis.set_major_formatter(_value_formatter(kind, False, ax.xaxis))
        ax.set_xlabel("rate" if kind == "proportion" else "mean")
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines["left"].set_visible(False)
        return _to_svg(fig, prefix)


def sample_ratio(x: Sequence[float], shares: Mapping[str, Series], planned: Mapping[str, float | None],
                 p_values: Series, threshold: float | None, colors: dict[str, str], prefix: str,
                 x_label: str = "day") -> str:
    """Observed share of each arm per look (solid) against its planned share (dashed), and the SRM p-value."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator

    with matplotlib.rc_context(_RC):
        fig, (top, bottom) = _figure(FULL_WIDTH, 4.0, rows=2, height_ratios=[1.5, 1.0],
                                     top=_legend_top((len(shares) + 1) / 2))
        xs = _arr(x)
        handles, labels = [], []
        plan = {vid: _f(planned.get(vid)) for vid in shares}
        same = len({round(p, 9) for p in plan.values() if not math.isnan(p)}) <= 1
        for vid, ys in shares.items():
            c = colors.get(vid, TREATMENT_COLORS[0])
            p = plan[vid]
            if not math.isnan(p):
                top.axhline(p, color=MUTED if same else c, linewidth=1.1, linestyle=(0, (4, 3)), zorder=1)
            (line,) = top.plot(xs, _arr(ys), color=c, linewidth=1.6, marker="o", markersize=3, zorder=3)
            handles.append(line)
            labels.append(vid)
        handles.append(Line2D([], [], color=MUTED, linewidth=1.0, linestyle=(0, (4, 3))))
        labels.append("planned")
        top.yaxis.set_major_formatter(_value_formatter("proportion", False, top.yaxis))
        top.set_ylabel("share of units")
        _style_axes(top)
        _legend(top, handles, labels)
        _headroom(top, 0.08)

        ps = [max(v, 1e-12) if not math.isnan(v) else math.nan for v in _arr(p_values)]
        bottom.set_yscale("log")
        thr = _f(threshold)
        floor = min([v for v in ps if not math.isnan(v)] + ([thr] if not math.isnan(thr) else []) + [1e-4])
        bottom.set_ylim(floor / 3, 1.5)
        if not math.isnan(thr):
            bottom.axhspan(floor / 3, thr, color="#cf222e", alpha=0.08, linewidth=0)
            bottom.axhline(thr, color="#cf222e", linewidth=1.0, linestyle=(0, (4, 3)))
            bottom.annotate(f"mismatch below p = {thr:g}", xy=(1.0, thr), xycoords=("axes fraction", "data"),
                            xytext=(-2, -3), textcoords="offset points", ha="right", va="top", fontsize=8,
                            color="#cf222e")
        bottom.plot(xs, ps, color=INK, linewidth=1.4, marker="o", markersize=3, zorder=3)
        bottom.yaxis.set_major_locator(LogLocator(base=10, numticks=4))
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        bottom.yaxis.set_minor_locator(LogLocator(base=10, subs=[]))
        bottom.set_ylabel("SRM p-value")
        bottom.set_xlabel(x_label)
        _int_ticks(bottom)
        _style_axes(bottom)
        return _to_svg(fig, prefix)


FOREST_LABEL_CHARS = 32  # a segment value on the forest plot's axis (the table shows more)


def forest(labels: Sequence[str], lifts: Mapping[str, Sequence[tuple[float | None, float | None, float | None]]],
           overall: Mapping[str, float | None], colors: dict[str, str], kind: str, direction: str, level: str,
           prefix: str, flagged: Sequence[bool] = ()) -> str:
    """A forest plot: each segment's absolute lift per treatment (``lifts[id][i] = (lift, lo, hi)`` for
    ``labels[i]``) as a point with its interval, each treatment's ``overall`` lift as a dashed vertical line,
    and the zero line.

    Labels are segment values from a data file, already made visible: cut to
    :data:`FOREST_LABEL_CHARS` and drawn as plain text (no mathtext: a ``$``
    is a dollar). A segment whose sample ratio is broken (``flagged``) has a
    hollow point and `` (SRM)`` after its label.
    """
    import matplotlib
    from matplotlib.lines import Line2D

    rc: dict[RcKeyType, Any] = {**_RC, "text.parse_math": False}
    with matplotlib.rc_context(rc):
        ids = list(lifts)
        hollow = [bool(flagged[i]) if i < len(flagged) else False for i in range(len(labels))]
        names = [cut(label, FOREST_LABEL_CHARS) + (" (SRM)" if hollow[i] else "") for i, label in enumerate(labels)]
        spread = min(0.5, 0.18 * (len(ids) - 1))
        offsets = [0.0] if len(ids) <= 1 else [-spread / 2 + spread * j / (len(ids) - 1) for j in range(len(ids))]
        row = 0.3 + 0.12 * max(0, len(ids) - 1)
        fig, (ax,) = _figure(FULL_WIDTH, 0.95 + row * max(1, len(labels)), left=_label_margin(names),
                             top=_legend_top(len(ids) + 1))
        ax.axvline(0.0, color=INK, linewidth=1.0, zorder=1)
        handles: list[Any] = []
        legend: list[str] = []
        for j, vid in enumerate(ids):
            c = colors.get(vid, TREATMENT_COLORS[j % len(TREATMENT_COLORS)])
            o = _f(overall.get(vid))
            if not math.isnan(o):
                ax.axvline(o, color=c, linewidth=1.1, linestyle=(0, (4, 3)), zorder=1)
            for i, (y, lo, hi) in enumerate(list(lifts[vid])[: len(labels)]):
                at = i + offsets[j]
                ax.plot([_f(lo), _f(hi)], [at, at], color=c, linewidth=2.4, alpha=0.45, solid_capstyle="round",
                        zorder=2)
                ax.plot([_f(y)], [at], "o", color=c, markersize=5.5, markerfacecolor="white" if hollow[i] else c,
                        zorder=3)
            handles.append(Line2D([], [], color=c, marker="o", markersize=5.5, linewidth=2.4, alpha=0.8))
            legend.append(f"{vid} vs control")
        handles.append(Line2D([], [], color=MUTED, linewidth=1.1, linestyle=(0, (4, 3))))
        legend.append("overall")
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(max(1, len(names)) - 0.4, -0.6)
        ax.xaxis.set_major_formatter(_value_formatter(kind, True, ax.xaxis))
        ax.set_xlabel(f"absolute lift{' (pp)' if kind == 'proportion' else ''}, {level}")
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines["left"].set_visible(False)
        _legend(ax, handles, legend)
        _better_note(ax, direction, horizontal=True)
        _symmetric_x(ax)
        return _to_svg(fig, prefix)


def _headroom(ax: Any, share: float = 0.22) -> None:
    """Extra space above the data so the legend never sits on a line."""
    lo, hi = ax.get_ylim()
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        ax.set_ylim(lo, hi + (hi - lo) * share)


def _symmetric_x(ax: Any) -> None:
    """Pad the x range so the zero line and every interval are comfortably inside."""
    lo, hi = ax.get_xlim()
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = (hi - lo) * 0.08 or 1e-3
    ax.set_xlim(lo - pad, hi + pad)
