# Eleventh session, call 2: raw per-program timelines of the mixed decode batch (timeline_dump.py).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 120 python $D/timeline_dump.py $R/timelines.npz 2>&1 | tail -8
