#!/usr/bin/env bash
# System packages the CPU tier needs on a fresh Debian machine: the ROCm runtime whose hiprtc
# compiles the HIP kernel for gfx90a (Debian bookworm ships ROCm 5.2).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends libamdhip64-5 libamdhip64-dev >/dev/null
