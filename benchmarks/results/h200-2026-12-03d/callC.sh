cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1 || echo "pip install failed"
pack() { tar czf $OUT/r.tgz -C $OUT r; }
timeout -k 15 -s INT 240 python .gpu/vexp.py sweep > $R/sweep.txt 2>&1; grep -v Warn $R/sweep.txt; pack
for M in 1 2; do
  echo "=== vllm mode $M" >> $R/ncu.txt
  timeout -k 15 -s INT 60 ncu -k regex:attention_kernel -s 1 -c 1 --section SpeedOfLight --metrics dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum,lts__t_requests_srcunit_tex_op_read.sum python .gpu/vexp.py ncu vllm $M >> $R/ncu.txt 2>&1
done
grep -E "^===|Duration|DRAM Throughput|L2 Cache Throughput|lts__t_" $R/ncu.txt; pack
timeout -k 15 -s INT 150 python ci/gpu_tier.py --deadline 130 --out $R/tier_c -n 15 -m gpu tests/test_decode.py -k "vllm" > $R/tier_c.log 2>&1
tail -2 $R/tier_c.log; pack
