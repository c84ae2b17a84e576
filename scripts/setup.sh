#!/usr/bin/env bash
# Prepares a Debian or Ubuntu machine to build, test and demo skbtrail (as root): the build's libraries,
# the network tools the scenarios and tests use, and tracefs. Swift itself comes from swift.org.
#
#   scripts/setup.sh          packages (one line; apt's whole output goes to $SETUP_LOG), tracefs, Swift check
#   scripts/setup.sh docs     after a build: man pages (man skbtrail, man skbtrail.diag, ...) and shell
#                             completions (bash, zsh, fish) for both programs, into $PREFIX (/usr/local)
set -euo pipefail
SETUP_LOG=${SETUP_LOG:-/tmp/skbtrail-setup.log}

PACKAGES=(libbpf-dev libelf-dev libsqlite3-dev libzstd-dev pkg-config bpftool iptables nftables iproute2
          iputils-ping tcpdump netcat-openbsd procps python3 sqlite3 zstd
          # pcapng read back by the tests (skbtrail pcap)
          tshark
          # the kernel matrix (scripts/kernels.sh): QEMU, the guest's busybox, modprobe for its modules
          qemu-system-x86 busybox-static kmod xz-utils)

# The man pages (argument-parser's generate-manual plugin, from the commands' own --help) and the
# completion scripts (each program's --generate-completion-script), installed where man and the shells look.
docs() {
    local root prefix=${PREFIX:-/usr/local} config=${CONFIGURATION:-debug}
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$root"
    [[ -x /opt/swift/usr/bin/swift ]] && export PATH=/opt/swift/usr/bin:$PATH
    swift package --allow-writing-to-package-directory generate-manual --multi-page --configuration "$config" \
        --authors "the skbtrail authors" >>"$SETUP_LOG" 2>&1 || { echo "setup.sh docs: generate-manual failed: see $SETUP_LOG" >&2; return 1; }
    local out=.build/plugins/GenerateManual/outputs bin
    bin=$(swift build -c "$config" --show-bin-path)
    install -d "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
        "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
    find "$out" -name '*.1' ! -name '*.help.1' -exec install -m 644 {} "$prefix/share/man/man1/" \;
    for tool in skbtrail skbtrail-record; do
        "$bin/$tool" --generate-completion-script bash >"$prefix/share/bash-completion/completions/$tool"
        "$bin/$tool" --generate-completion-script zsh >"$prefix/share/zsh/site-functions/_$tool"
        "$bin/$tool" --generate-completion-script fish >"$prefix/share/fish/vendor_completions.d/$tool.fish"
    done
    command -v mandb >/dev/null && mandb -q "$prefix/share/man" 2>/dev/null || true
    echo "setup.sh: man pages in $prefix/share/man/man1 (man skbtrail, man skbtrail.diag), completions for bash, zsh and fish" >&2
}
if [[ ${1:-} == docs ]]; then docs; exit; fi

[[ $(id -u) == 0 ]] || { echo "setup.sh: run as root (apt-get, mount)" >&2; exit 1; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "setup.sh: installing ${#missing[@]} packages (${missing[*]}); apt's output goes to $SETUP_LOG" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >>"$SETUP_LOG" 2>&1; then
        tail -n 15 "$SETUP_LOG" >&2
        echo "setup.sh: apt-get failed (above, the end of $SETUP_LOG)" >&2
        exit 1
    fi
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
