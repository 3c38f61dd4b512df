# Ninth session, call 9 (issue 4): whole_waves against the tuned entry on the mixed decode batch
# (mixed_ab.py, all its rows), and the planning-option tests on the GPU.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 150 python $D/mixed_ab.py > $R/mixed_ab.md 2> $R/mixed_ab.err
cat $R/mixed_ab.md; tail -3 $R/mixed_ab.err
timeout -k 5 -s INT 60 python -m pytest -q -m gpu tests/test_decode.py -k "planning_options or whole_waves" -p no:cacheprovider 2>&1 | tail -2
