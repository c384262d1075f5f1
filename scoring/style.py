"""One look per submission, the same in every plot: a colour, a line style and a marker.

The mapping is deterministic from the **sorted list of the board's submissions**: the i-th name
gets colour ``i mod 13``, line style ``i mod 4`` and marker ``i mod 9``. 13, 4 and 9 are pairwise
coprime, so (Chinese remainder theorem) the first 13 x 4 x 9 = 468 submissions all get different
(colour, line style, marker) triples, the first 13 all different colours, and two submissions
that share a colour (i and i + 13) differ in line style and marker. Grey is not in the palette:
it is kept for what is not a submission's own mark (unlabelled submissions, "not reached").

A plot with many submissions cannot show a readable legend of all of them: above
``MAX_LABELLED`` submissions only the ``TOP_LABELLED`` best ranked keep their style and a legend
entry, the others are drawn thin and grey, and the plot says so (:attr:`Styles.note`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import ceil
from typing import Any

# tab10 without its grey, then black and three darker or warmer hues far from those.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#000000", "#bcbd22",
           "#17becf", "#0b1f8f", "#e6a700", "#00756b")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h")
OTHER_COLOUR = "#b0b0b0"  # unlabelled submissions
MISSING_COLOUR = "#7f7f7f"  # "not reached", budgets and other marks that belong to no submission
MAX_LABELLED = 30  # up to this many submissions, every one is labelled
TOP_LABELLED = 20  # above it, only this many (the best ranked)


@dataclass(frozen=True)
class Style:
    """A submission's look: matplotlib colour, line style and marker."""

    colour: str
    linestyle: str
    marker: str

    def line(self) -> dict[str, Any]:
        """Keyword arguments of ``Axes.plot`` / ``Axes.step``."""
        return {"color": self.colour, "linestyle": self.linestyle, "marker": self.marker}


def style_of(index: int) -> Style:
    """The style of the ``index``-th submission in sorted order."""
    return Style(PALETTE[index % len(PALETTE)], LINESTYLES[index % len(LINESTYLES)], MARKERS[index % len(MARKERS)])


OTHER = Style(OTHER_COLOUR, "-", "")


@dataclass(frozen=True)
class Styles:
    """Every submission's style, and which submissions a plot labels.

    ``ranked`` is the order a legend lists them in (best first); ``shown`` its first
    ``TOP_LABELLED`` names when there are more than ``MAX_LABELLED``, else all of them.
    """

    by_name: dict[str, Style]
    ranked: tuple[str, ...]
    order: str = "rank"  # what ``ranked`` is ordered by, for the note
    shown: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        limit = len(self.ranked) if len(self.ranked) <= MAX_LABELLED else TOP_LABELLED
        object.__setattr__(self, "shown", tuple(self.ranked[:limit]))

    def __getitem__(self, submission: str) -> Style:
        """The submission's style; grey and unmarked when it is not labelled."""
        return self.by_name[submission] if submission in self.shown else OTHER

    def labelled(self, submission: str) -> bool:
        return submission in self.shown

    @property
    def note(self) -> str:
        """What a plot must say when it labels only some submissions ('' when it labels all)."""
        if len(self.shown) == len(self.ranked):
            return ""
        return (f"labelled: the first {len(self.shown)} of {len(self.ranked)} submissions by {self.order}; the "
                f"others are drawn thin and grey")

    def legend_columns(self, entries: int | None = None, per_column: int = 24) -> int:
        return max(1, ceil((len(self.shown) if entries is None else entries) / per_column))


def submission_styles(submissions: Iterable[str], ranked: Sequence[str] | None = None) -> Styles:
    """Styles from the submissions' sorted order (the same names give the same styles in any
    plot); ``ranked`` (best first, default: sorted) picks which are labelled."""
    names = sorted(set(submissions))
    known = set(names)
    order = list(dict.fromkeys(s for s in (ranked or ()) if s in known))
    order += [s for s in names if s not in set(order)]
    return Styles({name: style_of(i) for i, name in enumerate(names)}, tuple(order), "rank" if ranked else "name")


def board_styles(board: Any) -> Styles:
    """The styles of a :class:`scoring.leaderboard.Leaderboard`: its (sorted) ``submissions``,
    labelled in the order of its table (by rank)."""
    return submission_styles(board.submissions, list(board.table["submission"]))
