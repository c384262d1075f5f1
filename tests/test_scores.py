"""The scoring maths of scoring/scores.py against independent, loop-by-loop references.

The bootstrap's contract with its random stream is simple enough to re-implement here: one
``default_rng(seed)`` draw of shape ``(samples, submissions, workloads, studies)`` (drawn in chunks,
which does not change the stream), and slot ``k`` of (submission, workload) takes the present
study number ``floor(u * n)`` for each of the ``n`` present studies. The reference below resamples
with that stream one resample at a time in plain Python and scores by the definitions of
docs/scoring.md, so the percentile interval, the seed, ``tau_max`` and the sample count are all
checked exactly rather than statistically.
"""

from __future__ import annotations

import math
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from scoring.scores import RANK_ATOL, area_score, bootstrap, profile, ranks, ratios, separated, workload_times

INF, NAN = math.inf, math.nan


def reference_scores(times: list[list[float]], tau_max: float) -> list[float]:
    """Area scores by definition: ratio to the best time of the workload, mean of max(0, tau_max - r)."""
    n_sub, n_work = len(times), len(times[0])
    scores = [0.0] * n_sub
    for w in range(n_work):
        best = min(times[s][w] for s in range(n_sub))
        for s in range(n_sub):
            if math.isfinite(best) and math.isfinite(times[s][w]):
                scores[s] += max(0.0, tau_max - times[s][w] / best) / n_work
    return [score / (tau_max - 1) for score in scores]


def reference_ranks(scores: list[float]) -> list[int]:
    """1 + the number of scores clearly above (the same tolerance as the leaderboard)."""
    return [1 + sum(other - mine > 1e-9 * max(abs(other), abs(mine)) + 1e-12 for other in scores)
            for mine in scores]


def reference_bootstrap(study_times: np.ndarray, tau_max: float, samples: int, seed: int,
                        level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, rank probability, beats) by resampling one resample at a time."""
    n_sub, n_work, n_study = study_times.shape
    draws = np.random.default_rng(seed).random((samples, n_sub, n_work, n_study))
    point = reference_scores(
        [[_median(study_times[s, w]) for w in range(n_work)] for s in range(n_sub)], tau_max)
    point_ranks = reference_ranks(point)
    all_scores, held, beats = [], np.zeros(n_sub), np.zeros((n_sub, n_sub))
    for b in range(samples):
        times = []
        for s in range(n_sub):
            row = []
            for w in range(n_work):
                studies = [t for t in study_times[s, w] if not math.isnan(t)]
                picked = [studies[int(draws[b, s, w, k] * len(studies))] for k in range(len(studies))]
                row.append(statistics.median(picked) if picked else INF)
            times.append(row)
        scores = reference_scores(times, tau_max)
        resample_ranks = reference_ranks(scores)
        for s in range(n_sub):
            if abs(point[s]) <= RANK_ATOL:
                held[s] += abs(scores[s]) <= RANK_ATOL
            else:
                held[s] += resample_ranks[s] == point_ranks[s]
            for t in range(n_sub):  # s clearly above t in this resample: the rank's rule, for one pair
                beats[s, t] += scores[s] - scores[t] > 1e-9 * max(abs(scores[s]), abs(scores[t])) + 1e-12
        all_scores.append(scores)
    tail = (1 - level) / 2 * 100
    return (np.percentile(all_scores, tail, axis=0), np.percentile(all_scores, 100 - tail, axis=0),
            held / samples, beats / samples)


def _median(studies: np.ndarray) -> float:
    present = [t for t in studies if not math.isnan(t)]
    return statistics.median(present) if present else INF


# Two submissions x three workloads with ragged studies: A has 3, 2 and 1 studies, B has 2, 3 and none
# on the last workload (it never ran it), a third submission only misses targets. Ratios fall on
# both sides of 2, so tau_max = 2 and 4 give different scores.
RAGGED = np.array([
    [[10.0, 14.0, 30.0], [5.0, 9.0, NAN], [7.0, NAN, NAN]],
    [[12.0, 11.0, NAN], [6.0, 4.0, 25.0], [NAN, NAN, NAN]],
    [[INF, 40.0, INF], [INF, INF, INF], [INF, 9.0, NAN]],
])


def _many_studies() -> np.ndarray:
    """4 submissions x 2 workloads x 40 studies, a third of them missing, in the middle as well as at
    the end (so the order in which the present studies are kept matters); D is about 3x slower
    than the best: it scores 0 at tau_max = 2 and more at tau_max = 4."""
    rng = np.random.default_rng(11)
    times = np.exp(rng.normal(size=(4, 2, 40)) * 0.3) * np.array([1.0, 1.1, 1.3, 3.0])[:, None, None]
    times[rng.random(times.shape) < 0.33] = NAN
    times[1, 0, 5:9] = INF
    return times


@pytest.mark.parametrize("level", [0.95, 0.5])
@pytest.mark.parametrize("tau_max", [4.0, 2.0])
@pytest.mark.parametrize("data", ["ragged", "many studies"])
def test_bootstrap_equals_a_reference_resampling(level: float, tau_max: float, data: str) -> None:
    times = RAGGED if data == "ragged" else _many_studies()
    # 250 samples in chunks of 100: the last chunk is a short one.
    samples = 250 if data == "ragged" else 120
    result = bootstrap(times, tau_max, samples=samples, seed=7, level=level, chunk=100)
    low, high, held, beats = reference_bootstrap(times, tau_max, samples=samples, seed=7, level=level)
    assert result.samples == samples
    for mine, theirs in ((result.low, low), (result.high, high), (result.rank_probability, held),
                         (result.beats, beats)):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)
    assert np.all(result.low[:3] < result.high[:3])  # the data vary: the interval is not a point


def test_the_interval_narrows_with_the_level() -> None:
    wide = bootstrap(RAGGED, 4.0, samples=300, seed=3, level=0.95)
    narrow = bootstrap(RAGGED, 4.0, samples=300, seed=3, level=0.5)
    assert np.all(wide.low <= narrow.low) and np.all(narrow.high <= wide.high)
    assert np.any(wide.low < narrow.low) and np.any(narrow.high < wide.high)


def test_the_seed_decides_the_resamples() -> None:
    a = bootstrap(RAGGED, 4.0, samples=200, seed=1, level=0.5)
    b = bootstrap(RAGGED, 4.0, samples=200, seed=1, level=0.5)
    c = bootstrap(RAGGED, 4.0, samples=200, seed=2, level=0.5)
    assert a.low.tolist() == b.low.tolist() and a.high.tolist() == b.high.tolist()
    assert a.rank_probability.tolist() == b.rank_probability.tolist()
    assert (a.low.tolist(), a.high.tolist(), a.rank_probability.tolist()) != \
        (c.low.tolist(), c.high.tolist(), c.rank_probability.tolist())


@pytest.mark.parametrize("samples", [1, 99, 101, 250])
def test_rank_probability_never_exceeds_one(samples: int) -> None:
    steady = np.array([[[10.0, 10.0]], [[20.0, 20.0]]])  # no variance: every resample keeps the ranks
    result = bootstrap(steady, 4.0, samples=samples, seed=0, chunk=100)
    assert result.rank_probability.tolist() == [1.0, 1.0]
    assert result.samples == samples


def test_a_submission_scoring_zero_keeps_its_place_only_at_zero() -> None:
    # C scores 0 at the point estimate (the median of inf and 9 is inf) but not in resamples that
    # pick 9 twice; D never reaches a target: it scores 0 in every resample, so its place always holds.
    times = np.concatenate([RAGGED, np.array([[[INF, INF, NAN], [INF, NAN, NAN], [NAN, NAN, NAN]]])])
    result = bootstrap(times, 4.0, samples=200, seed=5)
    low, high, held, _ = reference_bootstrap(times, 4.0, samples=200, seed=5, level=0.95)
    assert result.low[3] == 0.0 and result.high[3] == 0.0 and result.rank_probability[3] == 1.0
    assert result.low[2] == 0.0 < result.high[2] and 0.0 < result.rank_probability[2] < 1.0
    for mine, theirs in ((result.low, low), (result.high, high), (result.rank_probability, held)):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


def test_workload_times_of_ragged_and_empty_studies() -> None:
    times = workload_times(RAGGED)
    assert times.tolist() == [[14.0, 7.0, 7.0], [11.5, 6.0, INF], [INF, INF, INF]]
    assert workload_times(np.array([[[INF, 1.0]]])).tolist() == [[INF]]  # inf is a value: median of 1, inf
    assert workload_times(np.array([[[3.0, 1.0, 2.0, 100.0]]])).tolist() == [[2.5]]


def test_ratios_per_workload() -> None:
    t = np.array([[10.0, INF, 4.0], [20.0, INF, 2.0], [5.0, INF, INF]])
    r = ratios(t)
    assert r.tolist() == [[2.0, INF, 2.0], [4.0, INF, 1.0], [1.0, INF, INF]]
    batch = ratios(np.stack([t, t * 2]))  # leading axes are a batch: the minimum is per resample
    assert batch.tolist() == [r.tolist(), r.tolist()]


def test_profile_counts_a_ratio_at_a_step_point() -> None:
    r = np.array([[1.0, 2.0, INF, 3.0], [1.5, 1.5, 1.5, 1.5]])
    rho = profile(r, np.array([1.0, 1.5, 2.0, 2.999, 3.0, 100.0]))
    assert rho.tolist() == [[0.25, 0.25, 0.5, 0.5, 0.75, 0.75], [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]]


def test_area_score_by_definition() -> None:
    r = np.array([[1.0, 3.0, INF], [2.0, 1.0, 5.0]])
    assert area_score(r, 4.0).tolist() == pytest.approx([(3 + 1 + 0) / 3 / 3, (2 + 3 + 0) / 3 / 3])
    assert area_score(r, 2.0).tolist() == pytest.approx([1 / 3, 1 / 3])
    assert area_score(r[None], 4.0).shape == (1, 2)  # batched
    assert area_score(np.array([[1.0]])).tolist() == [1.0]  # the best everywhere scores 1
    assert area_score(np.array([[1.0, 3.0]])).tolist() == pytest.approx([(3 + 1) / 2 / 3])  # default tau_max: 4


@pytest.mark.parametrize("tau_max", [1.0, 0.5])
def test_area_score_refuses_tau_max_of_one_or_less(tau_max: float) -> None:
    with pytest.raises(ValueError, match=r"tau_max must exceed 1, got"):
        area_score(np.array([[1.0, 2.0]]), tau_max)


def test_ranks_share_ties_and_tolerate_rounding() -> None:
    assert ranks(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 2, 4]
    assert ranks(np.array([0.3, 0.3 + 1e-13, 0.3 - 1e-12])).tolist() == [1, 1, 1]  # within tolerance: a tie
    assert ranks(np.array([0.3, 0.3 + 1e-6])).tolist() == [2, 1]
    assert ranks(np.array([0.0, 5e-13, 1.0])).tolist() == [2, 2, 1]  # the absolute tolerance near 0
    assert ranks(np.array([[0.2, 0.4], [0.4, 0.2]])).tolist() == [[2, 1], [1, 2]]  # per row


def test_the_point_ranks_use_tau_max_too() -> None:
    # Ranks cross between tau_max 2 and 4: C, A, B at 2 (0.55, 0.5, 0.4) but C, B, A at 4 (0.85, 0.8, 0.75).
    noise = np.array([1.0, 1.01, 0.99])
    times = np.array([[[10.0], [25.0]], [[16.0], [16.0]], [[19.0], [10.0]]]) * noise
    for tau_max in (2.0, 4.0):
        result = bootstrap(times, tau_max, samples=100, seed=0)
        assert result.rank_probability.tolist() == [1.0, 1.0, 1.0]  # the small noise never swaps them
        _, _, held, _ = reference_bootstrap(times, tau_max, samples=100, seed=0, level=0.95)
        assert held.tolist() == [1.0, 1.0, 1.0]


def test_the_relative_tolerance_of_ranks_scales_with_the_scores() -> None:
    # 5e-10 apart: a tie at 0.9 (1e-9 x 0.9 + 1e-12 > 5e-10), a clear difference at 0.1
    assert ranks(np.array([0.9, 0.9 + 5e-10])).tolist() == [1, 1]
    assert ranks(np.array([0.1, 0.1 + 5e-10])).tolist() == [2, 1]


def test_scoring_inf_nan_and_zero_times_warns_about_nothing() -> None:
    """inf / inf, 0 / 0 and inf - inf are expected here (never reached, instant targets, scores of
    submissions that reached nothing): no RuntimeWarning may reach the user."""
    times = np.array([[[INF, NAN, INF], [0.0, 0.0, NAN], [5.0, INF, NAN]],
                      [[INF, INF, INF], [0.0, 1.0, 2.0], [NAN, NAN, NAN]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = workload_times(times)
        r = ratios(t)
        assert r[:, 0].tolist() == [INF, INF] and math.isnan(r[0, 1]) and r[1, 1] == INF
        ranks(np.array([INF, INF, NAN, 0.5]))
        bootstrap(times, 4.0, samples=20, seed=0)
        ratios(np.array([[3.0, INF], [0.0, INF]]))  # x / 0 where another time is 0


def test_a_paired_comparison_separates_scores_whose_intervals_overlap() -> None:
    # One workload. C is the fastest, its median study 1, 1.5 or 2 in a resample; A (2.4) and B (2.8)
    # never vary, so their ratios share C's time: A's score 0.53-0.93, B's 0.40-0.87, overlapping
    # intervals, yet A is above B in every resample. Non-overlap called this pair "not separated".
    times = np.array([[[2.4, 2.4, 2.4]], [[2.8, 2.8, 2.8]], [[1.0, 1.5, 2.0]]])
    result = bootstrap(times, 4.0, samples=400, seed=0)
    assert result.low[0] < result.high[1]  # the intervals overlap
    assert result.beats[0, 1] == 1.0 and result.beats[1, 0] == 0.0
    assert separated(result.beats)[0, 1] and not separated(result.beats)[1, 0]
    assert np.diag(result.beats).tolist() == [0.0, 0.0, 0.0]  # nobody is above itself


def test_separation_needs_the_two_sided_level_in_one_direction() -> None:
    beats = np.array([[0.0, 0.975, 0.97], [0.02, 0.0, 0.5], [0.03, 0.5, 0.0]])
    assert separated(beats).tolist() == [[False, True, False], [False, False, False], [False, False, False]]
    assert separated(beats, level=0.9)[0, 2]  # 0.97 >= 0.95


def test_the_coverage_benchmark_finds_two_studies_too_few_and_ten_enough() -> None:
    # scripts/bench_bootstrap_coverage.py, small and seeded: what docs/scoring.md's coverage table says,
    # in direction: intervals over 2 noisy studies miss the true score far more than 5% of the time.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_bootstrap_coverage import coverage

    rng = np.random.default_rng(0)
    few, _, bias = coverage(2, sigma=0.6, miss=0.0, reps=80, samples=100, rng=rng)
    many, _, _ = coverage(10, sigma=0.1, miss=0.0, reps=80, samples=100, rng=rng)
    assert few.max() < 0.85 and many.min() > 0.85
    assert (bias < 0).all()  # the point score is biased low with few studies
