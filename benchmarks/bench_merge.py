"""Benchmark attn's merge beside its peers: `python benchmarks/bench_merge.py [--peers] [--shapes ...]`
(the same code as `python -m attn bench --op merge`; see attn/bench.py)."""
import sys

from attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--op", "merge", *sys.argv[1:]]))
