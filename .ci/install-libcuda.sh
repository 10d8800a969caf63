#!/usr/bin/env bash
# Installs Debian's NVIDIA driver library (libcuda1, non-free) so that `cust` links on a
# machine without a GPU, and prints the CUDA_LIBRARY_PATH to export (see TOOLCHAIN.md).
# Idempotent: does nothing that is already done.
set -euo pipefail
link_dir=/opt/cuda-link
if [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so ]; then
  if ! grep -rqs 'non-free' /etc/apt/sources.list.d/ /etc/apt/sources.list; then
    cat > /etc/apt/sources.list.d/xray-nonfree.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libcuda1 >&2
fi
mkdir -p "$link_dir/lib64"
ln -sf /usr/lib/x86_64-linux-gnu/libcuda.so "$link_dir/lib64/libcuda.so"
echo "$link_dir"
