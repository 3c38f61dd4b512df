# Eleventh session, call 7: uniform shapes against cuDNN with other tiles / occupancy; the decode
# and merge GPU tier (graph replay with guided chunks, measure, occupancy) under a deadline.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 200 python $D/uniform_ab.py > $R/uniform_ab.md 2>&1; cat $R/uniform_ab.md
timeout -k 10 -s INT 330 python ci/gpu_tier.py --deadline 310 --out $R/tier -n 15 tests/test_decode.py tests/test_merge.py > $R/tier.log 2>&1
tail -3 $R/tier.log; grep -E "Status|Total|passed|failed" $R/tier/*.md | head -5
tar czf $OUT/r.tgz -C $OUT r
