# Call A: the sixth session's prepared call (../h200-2026-12-03d/next_call.sh, copied to .gpu/ with the
# three branches exported under .gpu/wt/ by `git archive`), then the mixed batch's kernel times.
bash .gpu/next_call.sh
R=$OUT/r
timeout -k 10 -s INT 60 python .gpu/mprof.py > $R/mprof.log 2>&1; tail -30 $R/mprof.log
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > $R/smi.txt
python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $R/smi.txt
tar czf $OUT/r.tgz -C $OUT r
