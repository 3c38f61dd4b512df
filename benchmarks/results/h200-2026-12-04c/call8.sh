# Eleventh session, call 8 (final tree): the decode bench with peers, the rotary bench (the 64-token
# entry), memcheck of tests/test_bounds.py (with guided and occupancy BatchDecode cases).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 150 python -m attn bench --op decode --peers --no-flex --no-progress --out-dir $R/dbench > $R/dbench.log 2>&1
grep "^decode" $R/dbench.log | cut -c1-200
timeout -k 5 -s INT 60 python -m attn bench --op rotary --no-flex --no-progress --out-dir $R/rbench > $R/rbench.log 2>&1
grep "^rotary" $R/rbench.log
timeout -k 5 -s INT 280 python -m pytest -q -m gpu tests/test_bounds.py > $R/bounds.log 2>&1; tail -3 $R/bounds.log
tar czf $OUT/r.tgz -C $OUT r
