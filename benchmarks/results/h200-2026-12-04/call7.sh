# Ninth session, call 7 (issue 4): ncu of the mixed decode batch's attention and merge launches
# beside the uniform b=64 x 4096 (ncu_mixed.py): waves, occupancy, SM active cycles min / avg / max.
R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
D=benchmarks/results/h200-2026-12-04
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
M=sm__cycles_active.min,sm__cycles_active.avg,sm__cycles_active.max,sm__cycles_elapsed.max,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active
for K in attention_kernel merge_kernel; do for S in mixed uniform; do
  [ $K = merge_kernel ] && [ $S = uniform ] && continue
  echo "=== $K $S" >> $R/ncu.txt
  timeout -k 10 -s INT 90 ncu -k regex:$K -s 2 -c 1 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --metrics $M python $D/ncu_mixed.py $S >> $R/ncu.txt 2>&1
done; done
grep -E "^===|Duration|DRAM Throughput|Registers|Achieved Occ|Theoretical Occ|Grid Size|Block Size|Waves Per SM|sm__cycles|dram__|sm__warps|Block Limit" $R/ncu.txt | head -80
