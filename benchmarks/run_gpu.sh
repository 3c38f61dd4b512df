#!/usr/bin/env bash
# One GPU session's worth of evidence, time-boxed step by step so that a step cut by its limit
# still leaves its output (gpu_tier.py and the bench rewrite their reports as they go):
#   bash benchmarks/run_gpu.sh OUT_DIR [STEPS]
# STEPS: a comma list of tier, hip, tune, bench (default: all four, in that order).
# Budgets (seconds) come from the environment: TIER_S (600), HIP_S (400), TUNE_S (300), BENCH_S (480);
# pytest workers from WORKERS (14); extra tuner arguments from TUNE_ARGS (e.g. --no-hip). Writes
# OUT_DIR/tier/ and OUT_DIR/hip/ (GPU tier reports), the merged report OUT_DIR/tier_report/ (copy it
# to ci/reports/), the tuned device file (also installed into attn/configs/<vendor>/),
# OUT_DIR/<device>.md with one PNG per op, one log a step. PACK=FILE.tgz: also one archive of
# OUT_DIR, rewritten after every step (for runners that bring back few files or shallow folders).
set -u
OUT="${1:-benchmarks/results}"
STEPS="${2:-tier,hip,tune,bench}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
pip install -e . --no-deps --no-build-isolation -q >"$OUT/install.log" 2>&1 || true
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1 || true
has() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
pack() { [ -n "${PACK:-}" ] && tar czf "$PACK" -C "$(dirname "$OUT")" "$(basename "$OUT")"; return 0; }
W="${WORKERS:-14}"
if has tier; then
  # Everything but the HIP matrix (538 tests), which has a step and a time box of its own.
  t="${TIER_S:-600}"
  timeout -k 20 -s INT $((t + 60)) python ci/gpu_tier.py --deadline "$t" --out "$OUT/tier" -n "$W" \
      tests/test_decode.py tests/test_prefill.py tests/test_merge.py tests/test_rotary.py \
      tests/test_batch_attention.py tests/test_prefill_hopper.py >"$OUT/tier.log" 2>&1
  pack
fi
if has hip; then
  t="${HIP_S:-400}"
  timeout -k 20 -s INT $((t + 60)) python ci/gpu_tier.py --deadline "$t" --out "$OUT/hip" -n "$W" --durations=15 \
      tests/test_hip.py >"$OUT/hip.log" 2>&1
  pack
fi
if ls "$OUT"/tier/*.json "$OUT"/hip/*.json >/dev/null 2>&1; then
  # One report of both parts: what ci/reports/<device>.md should hold.
  python ci/gpu_tier.py --out "$OUT/tier_report" --merge "$OUT"/tier/*.json "$OUT"/hip/*.json >>"$OUT/tier.log" 2>&1
  pack
fi
if has tune; then
  t="${TUNE_S:-300}"
  timeout -k 20 $((t + 60)) python -m attn tune --op all --budget-s "$t" --no-progress ${TUNE_ARGS:-} >"$OUT/tune.log" 2>&1
  cp attn/configs/*/*.json "$OUT/" 2>/dev/null
  pack
fi
if has bench; then
  timeout -k 20 "${BENCH_S:-480}" python -m attn bench --op all --peers --flex-max 4 --out-dir "$OUT" --no-progress \
      >"$OUT/bench.log" 2>&1
  pack
fi
tail -n 5 "$OUT"/*.log
