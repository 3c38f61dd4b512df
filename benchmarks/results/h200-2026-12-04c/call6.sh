# Eleventh session, call 6: the new decode entries against the previous ones; the decode GPU tests
# touched by this session (graph replay with guided chunks, measure, occupancy, planning, long);
# the decode bench with peers.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 150 python $D/final_ab.py > $R/final_ab.md 2>&1; cat $R/final_ab.md
timeout -k 5 -s INT 200 python -m pytest -q -m gpu tests/test_decode.py -k "cuda_graph or measure or occupancy or planning or long or register" -p no:randomly > $R/tests.log 2>&1; tail -5 $R/tests.log
timeout -k 5 -s INT 200 python -m attn bench --op decode --peers --no-flex --no-progress --out-dir $R/bench > $R/bench.log 2>&1
tail -26 $R/bench.log
tar czf $OUT/r.tgz -C $OUT r
