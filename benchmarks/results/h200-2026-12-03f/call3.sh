R=$OUT/r; mkdir -p $R
/usr/local/cuda/bin/compute-sanitizer --help | grep -i -A2 padding
bash .gpu/bounds.sh
