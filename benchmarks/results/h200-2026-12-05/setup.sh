# Sourced by this session's call scripts (from the repository root on the device).
export PYTHONUNBUFFERED=1
# This machine's editable install did not map attn.layouts / attn.triton_kernels (Python 3.12):
# give the working copy the installed layout instead.
ln -sfn ../triton_kernels attn/triton_kernels; ln -sfn ../layouts attn/layouts
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
# step NAME SECONDS CMD...: run CMD time-boxed, its output and exit status in $OUT/NAME.log
step() { local name=$1 limit=$2; shift 2; timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1;
         echo "rc=$? after $(( $(date +%s) - T0 )) s" >>"$OUT/$name.log"; }
