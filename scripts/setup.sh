#!/usr/bin/env bash
# Prepares a Debian or Ubuntu machine to build, test and demo skbtrail (as root): the build's libraries,
# the network tools the scenarios and tests use, and tracefs. Swift itself comes from swift.org.
set -euo pipefail

PACKAGES=(libbpf-dev libelf-dev libsqlite3-dev libzstd-dev pkg-config bpftool iptables nftables iproute2
          iputils-ping tcpdump netcat-openbsd procps python3 sqlite3 zstd
          # pcapng read back by the tests (skbtrail pcap)
          tshark
          # the kernel matrix (scripts/kernels.sh): QEMU, the guest's busybox, modprobe for its modules
          qemu-system-x86 busybox-static kmod xz-utils)

[[ $(id -u) == 0 ]] || { echo "setup.sh: run as root (apt-get, mount)" >&2; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ -d /sys/kernel/tracing ]] && ! mountpoint -q /sys/kernel/tracing; then
    mount -t tracefs nodev /sys/kernel/tracing
fi

if ! command -v swift >/dev/null; then
    if [[ -x /opt/swift/usr/bin/swift ]]; then
        echo "setup.sh: swift is in /opt/swift/usr/bin: export PATH=/opt/swift/usr/bin:\$PATH" >&2
    else
        echo "setup.sh: no Swift toolchain: install Swift 6.1 or newer from https://www.swift.org/install/linux/" >&2
        exit 1
    fi
fi
