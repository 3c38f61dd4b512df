# Ninth session, call 2: the 22 GPU-tier tests call 1's deadline left (not_run_call1.txt), ncu of
# the fused rotary cache write (call 1's ncu skipped all three launches: -s 3 of 3), and
# sweep_write.py (k-program shapes of that write), rot_tiles.py (issue 5: a prefill tile for rotary on load?), whose eighth-session output was lost.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 15 -s INT 200 python ci/gpu_tier.py --deadline 180 --out $R/tier -n 8 $(cat $D/not_run_call1.txt) > $R/tier.log 2>&1
tail -2 $R/tier.log; grep -E "Status|Total" $R/tier/*.md
for L in HND vllm; do
  echo "=== $L" >> $R/ncu.txt
  timeout -k 10 -s INT 80 ncu -k regex:_rotary_kernel -s 1 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats --section SourceCounters --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_requests_srcunit_tex_op_write.sum,lts__t_sectors_srcunit_tex_op_write.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum python $D/ncu_write.py $L >> $R/ncu.txt 2>&1
done
grep -E "^===|Duration|DRAM Throughput|Memory Throughput|L2 Hit|Mem Busy|Registers|Achieved Occ|Block Size|Grid Size|Warp Cycles Per Issued|dram__bytes|lts__t_|bank_conflicts|inst_executed" $R/ncu.txt | head -90
timeout -k 5 -s INT 120 python $D/sweep_write.py > $R/sweep_write.md 2> $R/sweep_write.err
cat $R/sweep_write.md; tail -3 $R/sweep_write.err
timeout -k 5 -s INT 130 python benchmarks/results/h200-2026-12-03f/rot_tiles.py > $R/rot_tiles.md 2> $R/rot_tiles.err
cat $R/rot_tiles.md; tail -3 $R/rot_tiles.err
tar czf $OUT/r.tgz -C $OUT r
