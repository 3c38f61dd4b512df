R=$OUT/r; mkdir -p $R; export PYTHONUNBUFFERED=1
python -m pip install -q --no-deps --no-build-isolation -e . > $R/pip.log 2>&1
VARIANTS='{"tuned": {}, "no longest_first": {"longest_first": false}, "lf pps6": {"longest_first": true, "programs_per_sm": 6}, "lf pps8": {"longest_first": true, "programs_per_sm": 8}, "lf pps12": {"longest_first": true, "programs_per_sm": 12}, "lf pps16 mcb4": {"longest_first": true, "programs_per_sm": 16, "min_chunk_blocks": 4}}' \
LAYOUTS=mixed:HND:16,mixed:NHD:16,mixed:vllm:16,mixed:pool:1 \
  timeout -k 5 -s INT 180 python .gpu/split_ab.py > $R/lf_pps.md 2> $R/lf_pps.err; cat $R/lf_pps.md | grep -v "^attention_kernel\|^merge_kernel"
timeout -k 10 -s INT 200 python -m attn bench --op decode --peers --no-flex --no-plot --no-progress --out $R/dec.md > $R/dec.log 2>&1
grep -E "^\| b=|mixed" $R/dec.md | cut -c1-150
