"""What every plot of :mod:`scoring.plots` shares: the :class:`Plot` a plot function returns,
the sizes and fonts, a figure laid out by hand in inches (:class:`Frame`), round ticks, and saving
as a small palette PNG, written whole or staged (:func:`save_png`, :func:`staged_saves`).

The Agg backend is selected by the package (``scoring/plots/__init__.py``), which runs before any
of its modules imports pyplot."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.ticker import MaxNLocator
from PIL import Image

from scoring.style import Style, submission_styles

DPI = 100
MAX_PIXELS = 2_400_000  # larger figures are drawn at a lower dpi (their size on the page is the HTML's)
PANELS_UP_TO = 6  # up to this many workloads: time to target a panel each (else a heat map), curves a figure each
# (else small multiples in one figure)
SMALL = 7  # font size of ticks and legends (points)
TITLE = 8
CHAR = 0.6 / 72  # inches per character per point of font size (DejaVu Sans, a generous average)
LINE = 1.3 / 72  # inches per line of text per point of font size


@dataclass(frozen=True)
class Plot:
    """A written PNG and the caption that goes with it. ``os.PathLike``: ``Path(plot)`` and
    ``str(plot)`` give the file, so it can stand wherever a path did."""

    path: Path
    caption: str

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


# ------------------------------------------------------------------------------------ ticks
def log_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round tick values within [lo, hi] on a log axis: decades, with 2 and 5 (or 3) in between
    when the range is short; at most ``most`` of them, so that labels never crowd."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    low, high = lo * (1 - 1e-9), hi * (1 + 1e-9)
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas if low <= m * 10.0**e <= high]
        if 2 <= len(ticks) <= most:
            return ticks
    decades = [10.0**e for e in range(first, last + 1) if low <= 10.0**e <= high]
    if len(decades) > most:
        return decades[:: math.ceil(len(decades) / most)]
    return decades if len(decades) >= 2 else [float(f"{lo:.2g}"), float(f"{hi:.2g}")]


def linear_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    return [t for t in MaxNLocator(nbins=most - 1, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            if lo - 1e-9 * abs(hi - lo) <= t <= hi + 1e-9 * abs(hi - lo)]


def tick_label(value: float) -> str:
    """Short labels: 0.05, 300, 1e-4, 2.5e-6, 1e4."""
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.4g}"
    exponent = math.floor(math.log10(abs(value)))
    return f"{value / 10**exponent:.2g}e{exponent}"


# ------------------------------------------------------------------------------------ layout
class Frame:
    """A figure sized to its content: ``nrows`` x ``ncols`` panels of ``panel_w`` x ``panel_h``
    inches, margins in inches (``right`` holds a legend, ``bottom`` tick labels and a legend
    below), and a title wrapped to the figure's width whose height sets the top margin."""

    def __init__(self, nrows: int, ncols: int, panel_w: float, panel_h: float, *, left: float, bottom: float,
                 right: float, title: Sequence[str], sharey: bool = False, panel_title: bool = False,
                 top_axis: bool = False, wspace: float = 0.3, hspace: float = 0.6, below: Sequence[str] = ()) -> None:
        self.width = left + ncols * panel_w + (ncols - 1) * wspace + right
        # A legend below (of the labels ``below``): as many columns as fit the width, its rows added to the bottom.
        fit = int((self.width - 0.2) // (text_width(below) * 0.9 + 0.55)) if below else 1
        self.below_ncol = max(1, min(4, fit, len(below) or 1))
        bottom += math.ceil(len(below) / self.below_ncol) * SMALL * LINE * 1.35 + 0.1 if below else 0.0
        per_line = max(40, int(self.width / (TITLE * CHAR * 0.92)))
        wrapped = [part for line in title for part in textwrap.wrap(line, per_line)]
        self.top = 0.15 + len(wrapped) * TITLE * LINE + (0.3 if panel_title else 0) + (0.45 if top_axis else 0)
        self.height = self.top + nrows * panel_h + (nrows - 1) * hspace + bottom
        self.left, self.right, self.bottom = left, right, bottom
        self.fig = plt.figure(figsize=(self.width, self.height))
        self.fig.text(0.5, 1 - 0.08 / self.height, "\n".join(wrapped), ha="center", va="top", fontsize=TITLE)
        self.axes = np.empty((nrows, ncols), dtype=object)
        for r in range(nrows):
            for c in range(ncols):
                x0 = left + c * (panel_w + wspace)
                y0 = self.height - self.top - (r + 1) * panel_h - r * hspace
                share = {"sharey": self.axes[r, 0]} if sharey and c else {}
                ax = self.fig.add_axes((x0 / self.width, y0 / self.height, panel_w / self.width,
                                        panel_h / self.height), **share)
                if share:
                    ax.tick_params(labelleft=False)
                self.axes[r, c] = ax

    def legend_right(self, handles: Sequence[Any], ncol: int = 1, title: str | None = None) -> None:
        """A legend in the right margin, top-aligned with the panels."""
        self.fig.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=SMALL, frameon=False, title=title,
                        title_fontsize=SMALL, borderaxespad=0.0,
                        bbox_to_anchor=((self.width - self.right + 0.15) / self.width, 1 - self.top / self.height))

    def legend_below(self, handles: Sequence[Any]) -> None:
        """A legend centred in the bottom margin (reserved by ``below``), under the x labels."""
        self.fig.legend(handles=handles, loc="lower center", ncol=self.below_ncol, fontsize=SMALL, frameon=False,
                        bbox_to_anchor=(0.5, 0.05 / self.height), borderaxespad=0.0)

    def beside(self, ax: plt.Axes, width: float, gap: float) -> tuple[float, float, float, float]:
        """The rectangle (figure fractions) of a ``width``-inch axes ``gap`` inches right of ``ax``."""
        box = ax.get_position()
        return (box.x1 + gap / self.width, box.y0, width / self.width, box.height)


def text_width(texts: Sequence[str], size: float = SMALL) -> float:
    """Inches taken by the longest line of ``texts`` at ``size`` points (an upper estimate)."""
    return max((len(line) for text in texts for line in str(text).split("\n")), default=0) * size * CHAR


def legend_width(labels: Sequence[str], ncol: int) -> float:
    """Inches a legend of ``labels`` in ``ncol`` columns takes (markers and padding included)."""
    return ncol * (text_width(labels) * 0.9 + 0.55) + 0.2


# ------------------------------------------------------------------------------------ helpers
def own_style(submission: str) -> Style:
    """The style of a submission drawn without its board (alone, it is the first of its list)."""
    return submission_styles([submission]).by_name[submission]


def rgba(colour: str, alpha: float) -> tuple[float, float, float, float]:
    r, g, b, _ = to_rgba(colour)
    return (r, g, b, alpha)


# ------------------------------------------------------------------------------------ saving
_STAGING: list[str | None] = [None]  # inside staged_saves(token): plots are left aside for the caller to move in


@contextmanager
def staged_saves(token: str) -> Iterator[None]:
    """Plots saved meanwhile are written to :func:`staged_path` of their paths and left there: a
    leaderboard moves them into place with its tables, all or none (scoring/report.py), so a
    failure (a full disk) leaves the previous leaderboard's files as they were, not a mix of two.
    ``token`` (the writing command's process id) keeps two commands writing one folder apart."""
    _STAGING[0] = token
    try:
        yield
    finally:
        _STAGING[0] = None


def staged_path(out: Path, token: str) -> Path:
    """Where a plot saved inside :func:`staged_saves` is written before it is moved to ``out``."""
    return out.with_name(f".{out.name}.{token}.staged")


def save_png(fig: plt.Figure, out: Path) -> Path:
    """Write ``fig`` as a 256-colour, zlib-compressed PNG (a few tens of kB; the HTML embeds it);
    figures larger than ``MAX_PIXELS`` at the default dpi are drawn at a lower one. Written to a
    temporary file and renamed, so a failure (a full disk) never leaves a truncated PNG; inside
    :func:`staged_saves`, left at its staged path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = fig.get_size_inches()
    fig.set_dpi(min(DPI, math.sqrt(MAX_PIXELS / (width * height))))
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    image = Image.fromarray(pixels).quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    token = _STAGING[0]
    target = staged_path(out, token) if token else out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        image.save(target, format="PNG")
        if not token:
            os.replace(target, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return out
