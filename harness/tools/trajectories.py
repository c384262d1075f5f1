"""``optbench trajectories``: each optimizer's path on the 2-D Rosenbrock contour plot.

Every submission (built in, installed, a module or a ``.py`` file, as ``submission=`` takes them;
its name keys ``hparams``) runs ``steps`` updates from the same start with exact gradients (the
rosenbrock workload at size smoke, no jitter), with its default hyperparameters except those in
``hparams`` (per submission: rates tuned for networks are far too small, or too large, for
Rosenbrock's valley; configs/trajectories.yaml holds the ones used for the picture). Paths that
leave the plot or diverge are drawn up to that point and marked in the legend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from harness.config.compose import compose_config, to_plain
from harness.config.names import submission_names
from harness.config.registry import submission_class, workload_class
from harness.core.parts import trial_parts
from harness.errors import UserError
from harness.log import stderr_logger


def trial_config(submission: str, steps: int, start: list[float]) -> DictConfig:
    """The trial config of ``submission`` (a built-in's name, an installed entry point, a module or a
    .py file) on 2-D Rosenbrock from ``start`` without jitter."""
    return compose_config("trial", [
        "workload=rosenbrock", "workload.size=smoke", f"submission={submission}",
        f"workload.sizes.smoke.step_hint={steps}",
        "workload.sizes.smoke.options.start_jitter=0", f"++workload.sizes.smoke.options.start=[{start[0]},{start[1]}]"])


def trajectory(cfg: DictConfig, overrides: dict[str, Any], steps: int) -> np.ndarray:
    """The points x_0 .. x_n of the submission of ``cfg`` (:func:`trial_config`) on 2-D Rosenbrock
    (stops early on a non-finite value)."""
    workload = workload_class("rosenbrock")(cfg.workload, torch.device("cpu"))
    workload.load()
    name = str(cfg.submission.name)
    cls = submission_class(name, cfg.submission.get("source"))
    hparams = cls.Hparams.from_mapping({**to_plain(cfg.submission.hparams), **overrides}, submission=name)
    parts = trial_parts(workload, cls, hparams, seed=0)
    model, instance, batches, compute_loss = parts.model, parts.submission, parts.batches, parts.compute_loss
    points = [model.x.detach().clone().numpy()]
    for _ in range(steps):
        instance.update(next(batches), compute_loss)
        point = model.x.detach().clone().numpy()
        if not np.all(np.isfinite(point)):
            break
        points.append(point)
    instance.prepare_for_eval()  # schedule-free: the path is of the training iterate; end at x
    return np.array(points)


def run_trajectories(overrides: list[str], log=None) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    log = log or stderr_logger("trajectories")
    cfg = compose_config("trajectories", overrides)
    if len(cfg.start) != 2 or cfg.steps < 1:
        raise UserError("start must be two numbers and steps at least 1.")
    # every submission's config before any is run: an unknown name is refused with the valid and installed ones
    configs = [trial_config(text, int(cfg.steps), list(cfg.start)) for text in list(cfg.submissions)
               or submission_names()]

    xs, ys = np.meshgrid(np.linspace(-2.0, 2.0, 400), np.linspace(-1.0, 3.0, 400))
    values = 100 * (ys - xs**2) ** 2 + (1 - xs) ** 2
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.contour(xs, ys, np.log10(values + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
    finals = {}
    colours = plt.get_cmap("tab20")
    for i, trial in enumerate(configs):
        name = str(trial.submission.name)  # an external one's name (its config's, class's or module's)
        path = trajectory(trial, to_plain(cfg.hparams).get(name, {}), int(cfg.steps))
        end = path[-1]
        f_end = float(100 * (end[1] - end[0] ** 2) ** 2 + (1 - end[0]) ** 2)
        within = (np.abs(path[:, 0]) <= 2.5) & (path[:, 1] >= -1.5) & (path[:, 1] <= 3.5)
        inside = bool(within.all())
        shown = path if inside else path[: max(int(np.argmin(within)), 1)]
        diverged = len(path) < cfg.steps + 1
        label = f"{name}: f={f_end:.2g}" + (" (diverged)" if diverged else "") + ("" if inside else " (left the plot)")
        ax.plot(shown[:, 0], shown[:, 1], lw=1.4, marker=".", markersize=2, label=label, color=colours(i % 20),
                ls=("-", "--", ":")[i // 20 % 3])
        finals[name] = {"steps": len(path) - 1, "final": end.tolist(), "f": f_end if math.isfinite(f_end) else None}
        log(f"{name}: {len(path) - 1} steps, final f = {f_end:.3g}")
    ax.plot([cfg.start[0]], [cfg.start[1]], "ko", label="start")
    ax.plot([1.0], [1.0], "r*", markersize=14, label="minimum (1, 1)")
    ax.set_xlim(-2.0, 2.0)
    ax.set_ylim(-1.0, 3.0)
    ax.set_title(f"Rosenbrock: {cfg.steps} steps of each optimizer from ({cfg.start[0]:g}, {cfg.start[1]:g})")
    ax.legend(fontsize=8, loc="lower right")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return {"png": str(out), "optimizers": finals}
