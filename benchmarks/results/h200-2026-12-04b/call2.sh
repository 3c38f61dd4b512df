# Tenth session, call 2: the fused merge (issue 4). A/B against the merge launch, the decode and
# merge GPU tests and memcheck, then the decode bench with its peers.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04b
timeout -k 5 -s INT 200 python $D/fused_ab.py > $R/fused_ab.md 2>&1; cat $R/fused_ab.md
timeout -k 10 -s INT 170 python ci/gpu_tier.py --deadline 150 --out $R/tier -n 15 tests/test_decode.py tests/test_merge.py > $R/tier.log 2>&1
tail -2 $R/tier.log; grep -E "Status|Total|passed|failed" $R/tier/*.md | head
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -1 $R/bounds.log
timeout -k 5 -s INT 150 python -m attn bench --op decode --no-flex --no-progress --out-dir $R/bench > $R/bench.log 2>&1
tail -30 $R/bench.log
tar czf $OUT/r.tgz -C $OUT r
