# Eleventh session, call 3: guided chunks at the resident program count, run() and attention alone.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 400 python $D/guided_ab2.py > $R/guided_ab2.md 2>&1; cat $R/guided_ab2.md
