# Tenth session, call 5, on the final code (the fused and PDL merges reverted): memcheck with the
# new BatchDecode cases, the rotary GPU tests and bench with the committed tuned entries.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_rotary.py -p no:cacheprovider > $R/test_rotary.log 2>&1
tail -1 $R/test_rotary.log
timeout -k 5 -s INT 60 python -m attn bench --op rotary --no-progress --out-dir $R/bench > $R/bench.log 2>&1
grep "^rotary" $R/bench.log
timeout -k 5 -s INT 280 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -3 $R/bounds.log
tar czf $OUT/r.tgz -C $OUT r
