#!/usr/bin/env bash
# System packages the CPU tier needs on a fresh Debian bookworm machine: the ROCm 5.2 runtime whose
# hiprtc (inside libamdhip64.so.5; attn.hip.runtime finds it, no symlink needed) compiles the HIP
# kernel for gfx90a. Python side: pip install -e '.[hip,cuda,test]' (hip-python 6.2.0, cuda-bindings
# 12.x, nvidia-cuda-nvrtc-cu12 for the sm_80/sm_90 NVRTC compile).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if dpkg -s libamdhip64-5 libamdhip64-dev >/dev/null 2>&1; then
    exit 0
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libamdhip64-5 libamdhip64-dev >/dev/null
