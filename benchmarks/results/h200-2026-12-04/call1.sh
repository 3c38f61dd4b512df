# Ninth session, call 1: the whole GPU tier on main (the eighth session's host checks; last
# session's run of it stopped at its deadline with 82 tests not run and its files were lost),
# memcheck (tests/test_bounds.py), and ncu of the fused rotary cache write, HND / NHD / vLLM.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
timeout -k 15 -s INT 400 python ci/gpu_tier.py --deadline 370 --out $R/tier -n 15 > $R/tier.log 2>&1
tail -2 $R/tier.log; grep -E "Status|Total" $R/tier/*.md
timeout -k 5 -s INT 100 python -m pytest -q -m gpu tests/test_bounds.py -p no:cacheprovider > $R/bounds.log 2>&1
tail -1 $R/bounds.log
D=benchmarks/results/h200-2026-12-04
for L in HND NHD vllm; do
  echo "=== $L" >> $R/ncu.txt
  timeout -k 10 -s INT 60 ncu -k regex:_rotary_kernel -s 1 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_requests_srcunit_tex_op_write.sum,lts__t_sectors_srcunit_tex_op_write.sum,lts__t_requests_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum python $D/ncu_write.py $L >> $R/ncu.txt 2>&1
  python $D/ncu_write.py $L time >> $R/ncu_time.txt 2>&1
done
cat $R/ncu_time.txt
grep -E "^===|Duration|DRAM Throughput|Memory Throughput|L2 Hit|Mem Busy|Registers|Achieved Occ|Block Size|Grid Size|Warp Cycles Per Issued|dram__bytes|lts__t_|bank_conflicts|inst_executed|Stall" $R/ncu.txt | head -90
tar czf $OUT/r.tgz -C $OUT r
