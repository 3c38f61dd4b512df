cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 90 python .gpu/exp3.py rot > $R/rot.txt 2>&1; cat $R/rot.txt; pack
timeout -k 15 -s INT 60 python .gpu/exp3.py dec > $R/dec.txt 2>&1; cat $R/dec.txt; pack
for c in "NHD 16" "ragged 1" "pool 1"; do
  timeout -k 15 -s INT 90 ncu -k regex:attention_kernel -s 2 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats python .gpu/exp3.py ncu $c >> $R/ncu.txt 2>&1
done
grep -E "^(NHD|ragged|pool)|Duration|DRAM Throughput|L2 Cache Throughput|L1/TEX Hit|L2 Hit|Mem Busy|Stall|Registers|Warp Cycles Per Issued|Issued Warp|Achieved Occ|Compute \(SM\)" $R/ncu.txt | head -80; pack
