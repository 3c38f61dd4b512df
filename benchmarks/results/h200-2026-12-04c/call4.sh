# Eleventh session, call 4: the merge's part tile x split policies.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04c
timeout -k 5 -s INT 400 python $D/merge_tile_ab.py > $R/merge_tile_ab.md 2>&1; cat $R/merge_tile_ab.md
