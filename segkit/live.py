"""The live view of a training run in a notebook: one output, redrawn in place after every epoch.

`segkit.launch.train` shows it when a person watches a notebook (`segkit.progress.watching`):
the loss and val mIoU curves, the last row of history.csv, the time used and what is left of the
budget, with the epoch's progress bar right under it. Headless (papermill, nbval, CI, a
terminal) there is no view: the log lines say the same, and an executed notebook holds no
per-epoch figures. A saved notebook keeps the view's last state only (one figure).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segkit import progress
from segkit.config import TrainConfig
from segkit.rundir import HistoryRow, read_history
from segkit.viz import figure_png, plot_curves

if TYPE_CHECKING:  # pandas and matplotlib are imported where they are used (slow imports)
    import pandas as pd
    from matplotlib.figure import Figure


class LiveView:
    """`on_epoch_end` that redraws curves, the last history row and the time left in one output.

    Args:
        epochs: the epochs the run trains (for "3/20 epochs done" and the time they need).
        time_budget: minutes of the run's budget, 0 for none.
        title: the figure's title.
        history: rows already in history.csv (a resumed run), drawn too.
        show: called with each rendering, a mime bundle {"text/html", "text/plain"} (default:
            one notebook output replaced in place).
    """

    def __init__(
        self,
        epochs: int,
        time_budget: float = 0.0,
        title: str = "",
        history: Sequence[HistoryRow] = (),
        show: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.epochs, self.time_budget, self.title = epochs, time_budget, title
        self.rows = {r.epoch: r.as_dict() for r in history}  # shown: plain values for the table and curves
        self.show = show or progress.InPlace().show

    @classmethod
    def for_config(cls, cfg: TrainConfig, show: Callable[[dict[str, str]], None] | None = None) -> LiveView:
        """The view of the run `cfg` trains (with the run's earlier epochs when it resumes)."""
        history = read_history(Path(cfg.run_dir) / "history.csv") if cfg.resume else []
        model = f"{cfg.model} ({cfg.encoder})" if cfg.encoder else cfg.model
        title = f"{model} at {cfg.image_size[0]}x{cfg.image_size[1]}: loss and val mIoU"
        return cls(cfg.epochs, cfg.time_budget, title, history, show)

    def __call__(self, row: HistoryRow) -> None:
        """Add an epoch's history row (a resumed epoch's row replaces its partial one) and redraw."""
        self.rows[row.epoch] = row.as_dict()
        self.show(self.render())

    def history(self) -> pd.DataFrame:
        """The rows so far, by epoch."""
        import pandas as pd

        return pd.DataFrame([self.rows[e] for e in sorted(self.rows)])

    def figure(self) -> Figure:
        """Loss (train, val) and val mIoU per epoch: `segkit.viz.plot_curves`, as notebook 02 saves it."""
        return plot_curves(self.history(), metrics=("miou",), title=self.title)

    def status(self) -> str:
        """Epochs done, best val mIoU, minutes used, what is left of the budget and what the rest needs."""
        if not self.rows:
            budget = f" | budget {self.time_budget:g} min" if self.time_budget else ""
            return f"0/{self.epochs} epochs done: waiting for the first epoch{budget}"
        last = self.rows[max(self.rows)]
        done, used = last["epoch"] + 1, last.get("minutes") or 0.0
        parts = [f"{done}/{self.epochs} epochs done", f"{_minutes(used)} used"]
        scored = [r for r in self.rows.values() if r.get("miou") is not None]
        if scored:
            best = max(scored, key=lambda r: r["miou"])
            parts.insert(1, f"best val mIoU {best['miou']:.4f} (epoch {best['epoch']})")
        left = self.time_budget - used if self.time_budget else None
        if left is not None:
            parts.append(f"{_minutes(max(0.0, left))} left of the {self.time_budget:g} min budget")
        if done < self.epochs:
            rest = self.epochs - done
            need = used / done * rest
            stop = " (the budget stops training first)" if left is not None and need > left else ""
            what = "the last epoch needs" if rest == 1 else f"the other {rest} epochs need"
            parts.append(f"{what} ~{_minutes(need)}{stop}")
        return " | ".join(parts)

    def render(self) -> dict[str, str]:
        """The mime bundle shown: status line, figure (PNG inside the HTML) and the last history row."""
        status = self.status()
        if not self.rows:
            return {"text/html": f"<pre>{html.escape(status)}</pre>", "text/plain": status}
        last = self.history().tail(1)
        png = base64.b64encode(figure_png(self.figure())).decode()
        table = last.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")
        return {
            "text/html": f'<pre>{html.escape(status)}</pre><img src="data:image/png;base64,{png}"/>{table}',
            "text/plain": f"{status}\n{last.to_string(index=False, na_rep='', float_format=lambda v: f'{v:.4g}')}",
        }


def _minutes(minutes: float) -> str:
    return f"{minutes:.1f} min" if minutes < 60 else f"{int(minutes // 60)} h {int(minutes % 60):02d} min"


def live_view(cfg: TrainConfig) -> LiveView | None:
    """A LiveView, shown now with the bars' place under it, when a person watches this notebook; else None."""
    if not (progress.in_notebook() and progress.watching()):
        return None
    view = LiveView.for_config(cfg)
    view.show(view.render())
    progress.notebook_slot().show("")  # the epochs' bars go right under the view
    return view
