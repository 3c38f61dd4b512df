# Ninth session, call 3: the fused cache write's occupancy (sweep_regs.py: maxnreg and tile
# variants; call 2's ncu: 25-31% occupancy, register-limited).
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 5 -s INT 300 python $D/sweep_regs.py > $R/sweep_regs.md 2> $R/sweep_regs.err
cat $R/sweep_regs.md; tail -3 $R/sweep_regs.err
