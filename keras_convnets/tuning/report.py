"""The results of a search: one row per trial, a printable table, `trials.csv`, the Pareto front of accuracy
against MACs and its plot."""

from __future__ import annotations

import csv
import io
from typing import Sequence

import keras_tuner

from keras_convnets.tuning.base import OBJECTIVE
from keras_convnets.utils.io import atomic_write, write_text_atomic

__all__ = ["format_trial_table", "pareto_front", "plot_pareto", "searched_values", "trial_rows", "write_trial_csv"]


def searched_values(trial) -> dict:
    """The hyperparameter values a trial chose (keras-tuner's own `tuner/` entries left out)."""
    return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}


def _metric(trial, name: str) -> float | None:
    if trial.metrics.exists(name):
        value = trial.metrics.get_last_value(name)
        return None if value is None else float(value)
    return None


def trial_rows(tuner: keras_tuner.Tuner) -> list[dict]:
    """One dict per trial, in the order they started: `trial_id`, `status`, the searched `values`, `macs`,
    `params`, `score` (the objective, None unless completed) and `message` (why a trial failed)."""
    oracle = tuner.oracle
    order = list(oracle.start_order) + [t for t in oracle.trials if t not in oracle.start_order]
    rows = []
    for trial_id in order:
        trial = oracle.trials[trial_id]
        macs, params = _metric(trial, "macs"), _metric(trial, "params")
        message = ""
        if trial.status == "FAILED" and trial.message:
            lines = [line for line in trial.message.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else ""
            if "BudgetExceededError:" in message:
                message = message.split("BudgetExceededError:", 1)[1].strip()
        rows.append(
            {
                "trial_id": trial_id,
                "status": str(trial.status),
                "values": searched_values(trial),
                "macs": None if macs is None else int(macs),
                "params": None if params is None else int(params),
                "score": None if trial.score is None or trial.status != "COMPLETED" else float(trial.score),
                "message": message,
            }
        )
    return rows


def format_trial_table(rows: Sequence[dict], *, objective: str = OBJECTIVE) -> str:
    """A printable table of `trial_rows`: one line per trial with its widths, MACs, parameters and score."""
    names = []
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    head = ["trial", "status", *names, "MACs", "params", objective]
    lines = []
    for row in rows:
        lines.append(
            [
                row["trial_id"],
                row["status"]
                if row["status"] != "FAILED" or not row["message"].startswith("Over budget")
                else "OVER BUDGET",
                *[str(row["values"].get(n, "")) for n in names],
                "-" if row["macs"] is None else f"{row['macs']:,}",
                "-" if row["params"] is None else f"{row['params']:,}",
                "-" if row["score"] is None else f"{row['score']:.4f}",
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(head, *lines)]
    out = ["  ".join(str(c).rjust(w) for c, w in zip(head, widths))]
    out += ["  ".join(str(c).rjust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def write_trial_csv(rows: Sequence[dict], path: str) -> None:
    """`trial_rows` as CSV at `path` (written atomically): one column per searched value."""
    names = []
    for row in rows:
        names += [k for k in row["values"] if k not in names]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["trial_id", "status", *names, "macs", "params", "score", "message"])
    for row in rows:
        writer.writerow(
            [
                row["trial_id"],
                row["status"],
                *[row["values"].get(n, "") for n in names],
                "" if row["macs"] is None else row["macs"],
                "" if row["params"] is None else row["params"],
                "" if row["score"] is None else row["score"],
                row["message"],
            ]
        )
    write_text_atomic(path, buffer.getvalue())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points `(cost, score)` that no other point beats: none costs at most as much and scores at
    least as well with one of the two strictly better. Ordered by cost."""
    front = []
    for i, (cost, score) in enumerate(points):
        dominated = any(
            (c <= cost and s >= score) and (c < cost or s > score) for j, (c, s) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def plot_pareto(
    rows: Sequence[dict], path: str, *, objective: str = OBJECTIVE, title: str = "", max_macs: float | None = None
) -> list[str]:
    """Write a PNG of `objective` against MACs for the completed trials with the Pareto front marked (and the
    MACs budget, and the rejected trials at the bottom); return the ids of the trials on the front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["score"] is not None and r["macs"] is not None]
    rejected = [r for r in rows if r["score"] is None and r["macs"] is not None]
    points = [(r["macs"], r["score"]) for r in done]
    front = pareto_front(points)
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    if done:
        axes.scatter([p[0] / 1e6 for p in points], [p[1] for p in points], color="tab:blue", label="trials")
    if front:
        axes.plot(
            [points[i][0] / 1e6 for i in front],
            [points[i][1] for i in front],
            "o-",
            color="tab:red",
            label="Pareto front",
        )
        for i in front:
            axes.annotate(
                done[i]["trial_id"],
                (points[i][0] / 1e6, points[i][1]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    if rejected:
        low = min(points, key=lambda p: p[1])[1] if points else 0.0
        axes.scatter(
            [r["macs"] / 1e6 for r in rejected],
            [low] * len(rejected),
            marker="x",
            color="gray",
            label="over budget (not trained)",
        )
    if max_macs is not None:
        axes.axvline(max_macs / 1e6, color="gray", linestyle="--", label="max_macs")
    axes.set_xlabel("MACs per image (millions)")
    axes.set_ylabel(objective)
    axes.set_title(title or f"{objective} against MACs")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8, framealpha=0.6)
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return [done[i]["trial_id"] for i in front]
