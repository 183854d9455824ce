"""PNG charts for the report (matplotlib, drawn off-screen).

Each method draws one chart and returns the Markdown that shows it. Without matplotlib
(``pip install 'hsm-signer[bench]'``) the report is still written, saying so instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

NO_MATPLOTLIB = "*(chart not drawn: matplotlib is not installed; `pip install matplotlib`)*"


class Charts:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.available = importlib.util.find_spec("matplotlib") is not None

    def _pyplot(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt

    def line(self, name: str, series: dict[str, tuple[list, list]], *, title: str, xlabel: str, ylabel: str,
             logx: bool = False, logy: bool = False) -> str:
        if not self.available:
            return NO_MATPLOTLIB
        plt = self._pyplot()
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        _plot_lines(ax, series, xlabel=xlabel, ylabel=ylabel, logx=logx, logy=logy)
        ax.set_title(title)
        ax.legend()
        return self._save(fig, name)

    def line_grid(self, name: str, panels: list[tuple[str, dict[str, tuple[list, list]]]], *, title: str,
                  xlabel: str, ylabel: str, logx: bool = False, logy: bool = False) -> str:
        """Several line charts side by side (two per row), sharing a legend."""
        if not self.available:
            return NO_MATPLOTLIB
        plt = self._pyplot()
        rows = (len(panels) + 1) // 2
        fig, axes = plt.subplots(rows, 2, figsize=(10, 3.6 * rows), dpi=100, squeeze=False)
        for ax, (panel_title, series) in zip(axes.flat, panels):
            _plot_lines(ax, series, xlabel=xlabel, ylabel=ylabel, logx=logx, logy=logy)
            ax.set_title(panel_title, fontsize=10)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.suptitle(title, y=0.99, fontsize=12)
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(labels), fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.91))
        return self._save(fig, name, layout=False)

    def bars(self, name: str, labels: list[str], values: list[float], *, title: str, ylabel: str,
             annotate: list[str] | None = None, logy: bool = False) -> str:
        if not self.available:
            return NO_MATPLOTLIB
        plt = self._pyplot()
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        bars = ax.bar(range(len(labels)), values, color="#4c72b0")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        if logy:
            ax.set_yscale("log")
        for bar, text in zip(bars, annotate or [f"{v:,.0f}" for v in values]):
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        return self._save(fig, name)

    def hbars(self, name: str, labels: list[str], values: list[float], *, title: str, xlabel: str,
              annotate: list[str] | None = None, logx: bool = False, colors: list[str] | None = None) -> str:
        """Horizontal bars, first label on top: for many variants with long names."""
        if not self.available:
            return NO_MATPLOTLIB
        plt = self._pyplot()
        fig, ax = plt.subplots(figsize=(8, 0.42 * len(labels) + 1.2), dpi=110)
        positions = list(range(len(labels)))[::-1]
        bars = ax.barh(positions, values, color=colors or "#4c72b0")
        ax.set_yticks(positions)
        ax.set_yticklabels(labels, fontsize=8)
        if logx:
            ax.set_xscale("log")
        for bar, text in zip(bars, annotate or [f"{v:,.0f}" for v in values]):
            ax.annotate(" " + text, (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=7)
        ax.set_xlim(right=max(values) * (8 if logx else 1.45))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", which="both", alpha=0.3)
        return self._save(fig, name)

    def _save(self, fig, name: str, layout: bool = True) -> str:
        path = self.directory / f"{name}.png"
        if layout:
            fig.tight_layout()
        fig.savefig(path)
        import matplotlib.pyplot as plt
        plt.close(fig)
        return f"![{name}]({path.name})"


def _plot_lines(ax, series: dict[str, tuple[list, list]], *, xlabel: str, ylabel: str, logx: bool, logy: bool) -> None:
    """One line per series on ``ax``, with its axes labelled, scaled and gridded."""
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
