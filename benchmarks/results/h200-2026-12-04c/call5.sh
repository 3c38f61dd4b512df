# Eleventh session, call 5: register ceilings and deeper pipelines on the mixed batch.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 450 python $D/regs_ab.py > $R/regs_ab.md 2>&1; cat $R/regs_ab.md
