# Tenth session, call 3: why the fused merge lost (call 2: 1.17x on the mixed batch, 1.40x on
# 8 x 32768): the binaries' registers and shared memory under the device's Triton, and the
# merge tile's size (1 part a step: the fewest registers), on the shapes that lost.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
D=benchmarks/results/h200-2026-12-04b
SHAPES=mixed,8x32768 timeout -k 5 -s INT 200 python $D/fused_ab.py > $R/fused_ab.md 2>&1; cat $R/fused_ab.md
tar czf $OUT/r.tgz -C $OUT r
