"""Reading a launch's per-program clocks (BatchDecode.measure(), BatchAttention's prog_times):
where a memory-bound launch loses time to idle multiprocessors rather than to bandwidth."""
from __future__ import annotations

import numpy as np


def summary(times: np.ndarray, num_sms: int) -> dict:
    """times float [programs, >= 3]: start, end (microseconds) and multiprocessor of each program.
    Returns the launch's span; the SMs' busy fraction of it (an SM is busy while any of its
    programs runs): mean, min, max; when the last program started; and the span's share after
    the live programs last fell below half of the peak (the tail)."""
    if len(times) == 0:
        return dict(span_us=0.0, sm_busy_mean=0.0, sm_busy_min=0.0, sm_busy_max=0.0, last_start_us=0.0,
                    tail_share=0.0, peak_live=0)
    start, end, sm = times[:, 0], times[:, 1], times[:, 2].astype(np.int64)
    span = float(end.max() - start.min())
    busy = np.zeros(num_sms)
    for s in np.unique(sm[sm >= 0]):
        busy[s] = _union_length(start[sm == s], end[sm == s])
    used = busy[: num_sms] / span if span > 0 else busy
    # Live programs over time: +1 at each start, -1 at each end.
    t = np.concatenate([start, end])
    step = np.concatenate([np.ones_like(start), -np.ones_like(end)])
    order = np.lexsort((step, t))              # ends before starts at equal times
    live = np.cumsum(step[order])
    peak = int(live.max())
    below = np.nonzero(live >= peak / 2)[0]
    half_at = t[order][below[-1] + 1] if len(below) and below[-1] + 1 < len(t) else end.max()
    return dict(span_us=span, sm_busy_mean=float(used.mean()), sm_busy_min=float(used.min()),
                sm_busy_max=float(used.max()), last_start_us=float(start.max() - start.min()),
                tail_share=float((end.max() - half_at) / span) if span > 0 else 0.0, peak_live=peak)


def _union_length(start: np.ndarray, end: np.ndarray) -> float:
    """Length of the union of intervals [start_i, end_i)."""
    order = np.argsort(start)
    total, cur_s, cur_e = 0.0, None, None
    for s, e in zip(start[order], end[order]):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0.0)
