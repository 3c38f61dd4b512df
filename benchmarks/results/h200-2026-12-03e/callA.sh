# The next device call, prepared 2026-12-03 (sixth session, no device time left): the three
# branches awaiting a GPU, each benched against main in one call (ratios in one run).
# Here, before the call (each branch a worktree under the ignored .gpu/, carried):
#   for b in exp/vllm-flat-tails exp/paged-address-math exp/rotary-q-through-out; do
#     git worktree add -f .gpu/wt/${b#exp/} $b; done
#   cp benchmarks/results/h200-2026-12-03d/next_call.sh .gpu/
# then: run(command="bash .gpu/next_call.sh", carry=[".gpu"], timeout_s=600)
cd $(git rev-parse --show-toplevel 2>/dev/null || pwd)
R=$OUT/r; mkdir -p $R
export PYTHONUNBUFFERED=1
pack() { tar czf $OUT/r.tgz -C $OUT r; }
use() { python -m pip install -q --no-deps --no-build-isolation -e "$1" > $R/pip_$2.log 2>&1 || echo "pip $2 failed"; }
dec() { timeout -k 10 -s INT 120 python -m attn bench --op decode $2 --no-plot --no-progress --out $R/dec_$1.md > $R/dec_$1.log 2>&1
        grep -E "^decode " $R/dec_$1.log | cut -c1-90 | sed "s/^/$1: /"; }
ext() { timeout -k 10 -s INT 90 python -m attn bench --op extend --no-plot --no-progress --out $R/ext_$1.md > $R/ext_$1.log 2>&1
        grep -E "^extend " $R/ext_$1.log | cut -c1-90 | sed "s/^/$1: /"; }
rot() { timeout -k 10 -s INT 90 python benchmarks/bench_rotary.py --tokens 8192 --no-sweep --out $R/rot_$1.md > $R/rot_$1.log 2>&1
        grep -iE "load|prefill|decode" $R/rot_$1.md | head -6 | sed "s/^/$1: /"; }
# main: the baseline of every comparison (same run)
use . main; dec main ""; ext main; rot main; pack
use .gpu/wt/vllm-flat-tails tails; (cd .gpu/wt/vllm-flat-tails && dec tails ""); pack
use .gpu/wt/paged-address-math addr; (cd .gpu/wt/paged-address-math && dec addr "--shapes 64x4096,8x32768" && ext addr); pack
use .gpu/wt/rotary-q-through-out rotq; (cd .gpu/wt/rotary-q-through-out && rot rotq); pack
use . main
# Then the GPU tier of whichever branch is merged: test_decode -m gpu alone needs ~5 minutes.
timeout -k 10 -s INT 60 python .gpu/mprof.py > $R/mprof.log 2>&1; tail -30 $R/mprof.log
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > $R/smi.txt; python -c "import torch,triton;print(torch.__version__,triton.__version__)" >> $R/smi.txt
pack
