"""The scoring maths of docs/scoring.md, exactly: workload times, performance profiles, area scores,
and bootstrap uncertainty over studies.

Inputs are plain arrays: ``study_times[s, w, k]`` is the time (or steps) of submission ``s`` on
workload ``w`` in study ``k``: the study's best trial, ``inf`` when no trial of the study reached
the target, ``nan`` for a study that does not exist (submissions may have different numbers of
studies). Everything here is vectorised over submissions and workloads so that a leaderboard of
hundreds of submissions scores in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def workload_times(study_times: np.ndarray) -> np.ndarray:
    """t[s, w]: the median over studies (inf counts as a value, missing studies are ignored).

    A submission with no study at all on a workload gets inf: a workload it did not run counts
    as never reached.
    """
    present = ~np.isnan(study_times)
    counts = present.sum(axis=-1)
    # Sort with missing studies last (nan sorts after inf), then take the middle of the present ones.
    ordered = np.sort(np.where(present, study_times, np.nan), axis=-1)
    lower = np.take_along_axis(ordered, np.maximum((counts - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    upper = np.take_along_axis(ordered, np.maximum(counts // 2, 0)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        median = np.where(lower == upper, lower, (lower + upper) / 2)  # inf + x stays inf
    return np.where(counts > 0, median, np.inf)


def ratios(times: np.ndarray) -> np.ndarray:
    """r[s, w] = t[s, w] / min_s t[s, w]; inf where t is inf, and everywhere on a workload that no
    submission reached (it then adds nothing to any profile). Leading axes are a batch (the
    bootstrap's resamples: t[b, s, w])."""
    best = np.min(times, axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = times / best
    return np.where(np.isfinite(best) & np.isfinite(times), r, np.inf)


def profile(r: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rho[s, i] = fraction of workloads with r[s, w] <= taus[i]."""
    return (r[:, :, None] <= taus[None, None, :]).mean(axis=1)


def area_score(r: np.ndarray, tau_max: float = 4.0) -> np.ndarray:
    """The normalised area under the profile over [1, tau_max], in closed form.

    rho_s is a step function: each workload contributes (tau_max - r) on [r, tau_max] when
    r < tau_max, so (1 / (tau_max - 1)) * integral_1^tau_max rho_s = mean_w max(0, tau_max - r)
    / (tau_max - 1). Exact, no grid. ``r[..., s, w]``: leading axes are a batch.
    """
    if tau_max <= 1:
        raise ValueError(f"tau_max must exceed 1, got {tau_max}")
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(r), np.clip(tau_max - r, 0.0, None), 0.0)
    return gap.mean(axis=-1) / (tau_max - 1.0)


# Two scores closer than this are a tie: RANK_RTOL relative to the larger plus RANK_ATOL absolute.
# Scores are means of per-workload terms in [0, 1]: the same terms summed in another order differ
# by a few ulps (~1e-16 relative per workload), far below 1e-9; two submissions whose scores differ
# by 1e-9 would need times that differ by ~1e-9 relative, below any clock's meaning.
RANK_RTOL = 1e-9
RANK_ATOL = 1e-12


def clearly_below(scores: np.ndarray) -> np.ndarray:
    """``below[..., i, j]``: score ``j`` exceeds score ``i`` by more than ``RANK_RTOL`` x the larger +
    ``RANK_ATOL`` (the one rule for "better" that ranks, the bootstrap and its pairwise comparisons
    share). Works on the last axis of ``scores``."""
    size = np.abs(scores)
    margin = np.maximum(size[..., None, :], size[..., :, None])  # in place from here: the bootstrap's hot spot
    margin *= RANK_RTOL
    margin += RANK_ATOL
    with np.errstate(invalid="ignore"):
        return scores[..., None, :] - scores[..., :, None] > margin


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based positions by descending score: 1 + the number of scores *clearly* above (by more
    than ``RANK_RTOL`` x the larger + ``RANK_ATOL``); ties share the best position ("1, 1, 3").
    Works on the last axis, so the bootstrap ranks its resamples by the same rule."""
    return _ranks_from(clearly_below(scores))


def _ranks_from(below: np.ndarray) -> np.ndarray:
    """Ranks from :func:`clearly_below`'s matrix: 1 + how many are above each."""
    return np.count_nonzero(below, axis=-1) + 1


@dataclass
class Uncertainty:
    """Bootstrap summary: per submission the score's CI and the probability its rank holds; per pair
    of submissions ``beats[i, j]``, the fraction of resamples in which ``i`` scores clearly above ``j``
    (:func:`clearly_below`). Both submissions are scored on the *same* resamples, so ``beats`` is a
    paired comparison: the right test of "i is better than j" (two intervals that do not overlap are
    not: the scores of one resample share each workload's fastest time, and so move together)."""

    low: np.ndarray
    high: np.ndarray
    rank_probability: np.ndarray
    samples: int
    beats: np.ndarray


def separated(beats: np.ndarray, level: float = 0.95) -> np.ndarray:
    """``separated[i, j]``: ``i`` scores clearly above ``j`` in at least ``(1 + level) / 2`` of the paired
    resamples (0.975 at 95%): the resampled difference's ``level`` percentile interval lies above 0."""
    return beats >= (1 + level) / 2


def bootstrap(study_times: np.ndarray, tau_max: float, samples: int, seed: int, level: float = 0.95,
              chunk: int = 10) -> Uncertainty:
    """Resample each (submission, workload)'s studies with replacement, recompute the scores.

    The unit resampled is the study (one tuning run with its own seeds): each (submission, workload)'s
    studies are drawn again, independently of the others'; the workloads are fixed, so the interval is
    the uncertainty of these submissions' scores on these workloads, not on others.

    The interval is the percentile interval at ``level``; ``rank_probability[s]`` is the fraction
    of resamples in which submission ``s`` keeps the position it has in the point estimate. A
    submission that scores 0 (within ``RANK_ATOL``) is tied last, whatever its rank's number
    (1 + how many score more, which moves as *others* rise or fall to 0): it keeps that place in
    a resample exactly when it scores 0 there too.

    Resamples are drawn ``chunk`` at a time (the same random numbers, in the same order, whatever
    the chunk): 10 keeps each chunk's arrays small enough to be reused instead of mapped afresh,
    which made 100 at a time 20 % slower on a board of 200 submissions x 20 workloads x 5 studies.
    """
    rng = np.random.default_rng(seed)
    point = area_score(ratios(workload_times(study_times)), tau_max)
    point_ranks, last = ranks(point), np.abs(point) <= RANK_ATOL
    n_sub, n_work, n_study = study_times.shape
    present = ~np.isnan(study_times)
    # A (submission, workload) without studies counts 1: its one slot picks index 0 of an all-nan row,
    # so its resamples have no study either (a workload time of inf).
    counts = np.maximum(present.sum(axis=-1), 1)
    # Present studies first, in their order, so that an index below counts[s, w] always picks a real study.
    packed = np.take_along_axis(study_times, np.argsort(~present, axis=-1, kind="stable"), axis=-1).ravel()
    row_start = (np.arange(n_sub * n_work) * n_study).reshape(n_sub, n_work, 1)  # where each row's studies begin
    scores, same_rank, beats = [], np.zeros(n_sub), np.zeros((n_sub, n_sub))
    for start in range(0, samples, chunk):
        b = min(chunk, samples - start)
        picks = (rng.random((b, n_sub, n_work, n_study)) * counts[None, :, :, None]).astype(np.int64)
        resampled = packed[row_start + picks]  # picks[..., j]-th study of each row, by flat index
        resampled = np.where(np.arange(n_study)[None, None, None, :] < counts[None, :, :, None], resampled, np.nan)
        chunk_scores = area_score(ratios(workload_times(resampled)), tau_max)  # all b resamples at once
        scores.append(chunk_scores)
        below = clearly_below(chunk_scores)
        held = np.where(last[None, :], np.abs(chunk_scores) <= RANK_ATOL, _ranks_from(below) == point_ranks[None, :])
        same_rank += held.sum(axis=0)
        beats += np.count_nonzero(below, axis=0).T  # beats[i, j]: i above j, i.e. j below i
    all_scores = np.concatenate(scores)
    tail = (1 - level) / 2 * 100
    return Uncertainty(low=np.percentile(all_scores, tail, axis=0), high=np.percentile(all_scores, 100 - tail, axis=0),
                       rank_probability=same_rank / samples, samples=samples, beats=beats / samples)
