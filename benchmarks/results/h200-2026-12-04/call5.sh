# Ninth session, call 5: vLLM's k-program shapes after write_tile 4096 (sweep_vllm.py), memcheck
# over every op on the new tiles (tests/test_bounds.py), and the decode bench on main (issue 4's
# shapes, every layout; FlexAttention off) for this session's record.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 120 python $D/sweep_vllm.py > $R/sweep_vllm.md 2> $R/sweep_vllm.err
cat $R/sweep_vllm.md; tail -3 $R/sweep_vllm.err
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -1 $R/bounds.log
timeout -k 10 -s INT 300 python -m attn bench --op decode --no-flex --out-dir $R/dbench --no-progress > $R/dbench.log 2>&1
tail -25 $R/dbench.log
tar czf $OUT/r.tgz -C $OUT r
