# Ninth session, call 8 (issue 4): the mixed decode batch's split knobs (mixed_ab.py).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 200 python $D/mixed_ab.py > $R/mixed_ab.md 2> $R/mixed_ab.err
cat $R/mixed_ab.md; tail -3 $R/mixed_ab.err
