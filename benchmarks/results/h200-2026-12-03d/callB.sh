cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 300 python .gpu/vexp.py sweep > $R/sweep.txt 2>&1; cat $R/sweep.txt | grep -v Warn; pack
for L in vllm HND; do
  echo "=== $L" >> $R/ncu.txt
  timeout -k 15 -s INT 90 ncu -k regex:attention_kernel -s 1 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --metrics dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum,lts__t_requests_srcunit_tex_op_read.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ldgsts.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ldgsts.sum python .gpu/vexp.py ncu $L >> $R/ncu.txt 2>&1
done
grep -E "^===|Duration|DRAM Throughput|L2 Hit|L1/TEX Hit|dram__bytes|lts__t_|l1tex__t_|Registers|Achieved Occ|Stall|Warp Cycles Per Issued|Mem Busy|Max Bandwidth" $R/ncu.txt | head -60; pack
