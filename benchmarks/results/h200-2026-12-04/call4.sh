# Ninth session, call 4: the fused cache write at write_tile 4096 (sweep_tile.py, before / now in
# alternating rounds), the rotary GPU tests on the new tiles, and the rotary bench (its report
# and plot into $OUT/r/bench).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 200 python $D/sweep_tile.py > $R/sweep_tile.md 2> $R/sweep_tile.err
cat $R/sweep_tile.md; tail -3 $R/sweep_tile.err
timeout -k 10 -s INT 150 python ci/gpu_tier.py --out $R/tier -n 8 tests/test_rotary.py tests/test_layouts.py > $R/tier.log 2>&1
tail -1 $R/tier.log; grep -E "Status|Total" $R/tier/*.md
timeout -k 10 -s INT 150 python -m attn bench --op rotary --out-dir $R/bench --no-progress > $R/bench.log 2>&1
tail -12 $R/bench.log
tar czf $OUT/r.tgz -C $OUT r
