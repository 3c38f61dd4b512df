# Ninth session, call 6: vLLM's k programs at 8 slots x 1 head (slot_run_heads), through the
# launcher: sweep_vllm.py again (its "launcher" row is the new choice), the rotary GPU tests, the
# rotary bench, memcheck.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 10 -s INT 150 python ci/gpu_tier.py --out $R/tier -n 8 tests/test_rotary.py tests/test_layouts.py > $R/tier.log 2>&1
tail -1 $R/tier.log; grep -E "Status|Total" $R/tier/*.md
timeout -k 10 -s INT 100 python -m attn bench --op rotary --out-dir $R/bench --no-progress > $R/bench.log 2>&1
tail -10 $R/bench.log
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -1 $R/bounds.log
timeout -k 5 -s INT 100 python $D/sweep_vllm.py > $R/sweep_vllm.md 2> $R/sweep_vllm.err
cat $R/sweep_vllm.md; tail -3 $R/sweep_vllm.err
tar czf $OUT/r.tgz -C $OUT r
