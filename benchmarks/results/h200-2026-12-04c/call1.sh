# Eleventh session, call 1: guided split-KV chunks A/B with per-program timelines; the rotary
# bench (its tuned apply row's heuristic column, unchecked on a GPU since the fix).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 330 python $D/guided_ab.py > $R/guided_ab.md 2>&1; tail -45 $R/guided_ab.md
timeout -k 5 -s INT 120 python -m attn bench --op rotary --no-flex --no-progress --out-dir $R/rbench > $R/rbench.log 2>&1
tail -12 $R/rbench.log
tar czf $OUT/r.tgz -C $OUT r
