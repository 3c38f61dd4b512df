# Tenth session, call 4: the merge launch as a programmatic dependent launch (pdl_merge), A/B;
# the decode and merge GPU tests (graph replay included) and the decode bench.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04b
timeout -k 5 -s INT 150 python $D/pdl_ab.py > $R/pdl_ab.md 2>&1; cat $R/pdl_ab.md | tail -25
timeout -k 10 -s INT 200 python ci/gpu_tier.py --deadline 185 --out $R/tier -n 15 tests/test_decode.py tests/test_merge.py > $R/tier.log 2>&1
tail -1 $R/tier.log; grep -E "Status|Total" $R/tier/*.md | head -3
timeout -k 5 -s INT 100 python -m attn bench --op decode --no-flex --no-progress --out-dir $R/bench > $R/bench.log 2>&1
tail -22 $R/bench.log
tar czf $OUT/r.tgz -C $OUT r
