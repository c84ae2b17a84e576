#!/usr/bin/env bash
# The kernel matrix: skbtrail's recorder under the kernels users run (Debian's 5.10, 6.1 and 6.12), each
# booted under QEMU (TCG) with the host's own filesystem, from this repository alone.
#
#   scripts/kernels.sh list                     the kernels it knows, and whether they are fetched
#   scripts/kernels.sh fetch [VER...]           downloads and unpacks them (default all; cached)
#   scripts/kernels.sh run [--rw DIR]... [--console FILE] VER -- COMMAND...
#                                               boots VER and runs COMMAND in it; exits with its status
#   scripts/kernels.sh matrix [VER...]          on each kernel (default all): skbtrail-record --check and
#                                               the RecorderTests, then a table; non-zero if a test failed
#
# The guest sees the host's / read-only over 9p under a tmpfs overlay (its writes vanish at power-off;
# --rw DIR shares DIR writable), its kernel's modules at /lib/modules/$(uname -r), a fresh tmpfs on
# /run, tracefs, debugfs, bpffs and cgroup2, and lo up. COMMAND runs as root in the caller's directory
# with the caller's PATH and stdin from /dev/null; its stdout and stderr stream back over two serial
# ports (about 200 KB/s: write bulky output into a --rw directory). Exit status: COMMAND's; 124 when
# the boot hit KERNELS_TIMEOUT; 125 when the harness or the guest failed (the console's tail is printed).
#
# matrix runs the binaries of an earlier `swift build --build-tests` (from SKBTRAIL_BUILD) and writes
# into the log directory, per kernel: VER.log (all output), VER.console (the kernel's console),
# VER.check (the verifier's verdicts), VER.xml (the tests' JUnit report).
#
# Environment:
#   SKBTRAIL_KERNEL_CACHE  where kernels are kept (default ~/.cache/skbtrail-kernels; 1 GB for all)
#   SKBTRAIL_BUILD         the SwiftPM build directory matrix runs from (default .build here)
#   SKBTRAIL_RECORDER      the recorder matrix checks and tests (default: the debug one of SKBTRAIL_BUILD;
#                          `swift build -c release --product skbtrail-record` makes the tests faster)
#   KERNELS_LOGS           matrix's log directory (default $SKBTRAIL_BUILD/kernels)
#   KERNELS_MEM            guest memory in MiB (default 2048)
#   KERNELS_CPUS           guest vCPUs (default 1: TCG on a busy 2-core host was slower with 2)
#   KERNELS_CPU            QEMU's CPU model (default qemu64: about 20% faster under TCG than max, whose
#                          AVX2 glibc takes on emulated vector instructions)
#   KERNELS_JOBS           kernels matrix boots at once (default: the number of CPUs; 2 here made the
#                          three kernels take 13 minutes with the release recorder, instead of 25)
#   KERNELS_TIMEOUT        seconds one boot may take, command included (default 600; matrix 1800)
#   KERNELS_APPEND         more kernel command line
#   SKBTRAIL_DEBIAN_MIRROR the Debian mirror (default: the one in /etc/apt/sources.list*)
#
# Needs qemu-system-x86, busybox-static and kmod (installed when missing, as root). KVM is not used:
# under a PVM host's KVM a stock kernel is ~100 times slower than TCG.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/kernels
CACHE=${SKBTRAIL_KERNEL_CACHE:-${HOME:-/root}/.cache/skbtrail-kernels}
BUILD=${SKBTRAIL_BUILD:-$ROOT/.build}

# The kernels, and the Debian suite whose linux-image-amd64 gives each.
VERSIONS=(5.10 6.1 6.12)
declare -A SUITE=([5.10]=bullseye [6.1]=bookworm [6.12]=trixie)

die() { echo "kernels.sh: $*" >&2; exit 125; }
say() { echo "kernels.sh: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

TEMPS=()
QEMU_PID=
declare -A RUNNING=()   # matrix: the `kernels.sh run` processes of the kernels booted now, by PID
TAILS=()                # and what streams their logs here
cleanup() {
    set +e
    [[ -n $QEMU_PID ]] && kill "$QEMU_PID" 2>/dev/null
    [[ ${#RUNNING[@]} == 0 ]] || kill "${!RUNNING[@]}" 2>/dev/null
    [[ ${#TAILS[@]} == 0 ]] || kill "${TAILS[@]}" 2>/dev/null
    [[ ${#TEMPS[@]} == 0 ]] || rm -rf "${TEMPS[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A temporary directory (in DIR, default $TMPDIR or /tmp), removed at exit; its path in $TMP_DIR (not
# printed: a command substitution would lose TEMPS).
temporary() { TMP_DIR=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/kernels.XXXXXX"); TEMPS+=("$TMP_DIR"); }

known() { [[ -n ${SUITE[$1]:-} ]] || die "unknown kernel $1 (known: ${VERSIONS[*]})"; }
fetched() { [[ -s $CACHE/$1/release ]]; }

need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} == 0 ]] && return
    [[ $(id -u) == 0 ]] || die "needs ${missing[*]}: apt-get install ${missing[*]} (as root)"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2 ||
        die "cannot install ${missing[*]}"
}

# The Debian mirror this machine uses (a URI ending in /debian in its apt sources).
mirror() {
    if [[ -n ${SKBTRAIL_DEBIAN_MIRROR:-} ]]; then echo "$SKBTRAIL_DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
          awk '!/^[[:space:]]*#/ { for (i = 1; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }')
    echo "${uri:-http://deb.debian.org/debian}"
}

# The ELF kernel inside a bzImage (its payload, decompressed): QEMU boots it through the PVH entry,
# which skips the decompressor, slow under TCG.
unpack_vmlinux() {
    local image=$1 out=$2 setup offset length magic decompress
    setup=$(( ($(od -An -tu1 -j497 -N1 "$image") + 1) * 512 ))
    offset=$(( setup + $(od -An -tu4 -j584 -N4 "$image") ))
    length=$(( $(od -An -tu4 -j588 -N4 "$image") - 4 ))   # the payload ends with its decompressed size
    payload() { dd if="$image" iflag=skip_bytes,count_bytes skip="$offset" count="$1" bs=1M status=none; }
    magic=$(payload 4 | od -An -tx1 | tr -d ' \n')
    case $magic in
        28b52ffd) decompress="zstd -dcq" ;;
        fd377a58) decompress="xz -dc" ;;
        1f8b*) decompress="gzip -dc" ;;
        *) return 1 ;;
    esac
    payload "$length" | $decompress > "$out" &&
        [[ $(head -c 4 "$out" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]
}

# Downloads VER's kernel package with a private apt state (the machine's own lists stay untouched)
# and unpacks the kernel, its modules (with modules.dep), System.map and config into $CACHE/VER.
fetch_one() {
    local ver=$1 suite=${SUITE[$1]} dir=$CACHE/$1 apt=$CACHE/apt/${SUITE[$1]} pkg rel x
    if fetched "$ver"; then say "$ver: cached ($(<"$dir/release"))"; return; fi
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/empty"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $suite main" > "$apt/sources.list"
    local opts=(-q -o Dir::State="$apt" -o Dir::Cache="$apt" -o Dir::Etc::SourceList="$apt/sources.list"
                -o Dir::Etc::SourceParts="$apt/empty" -o Dir::Etc::PreferencesParts="$apt/empty"
                -o Dir::Etc::Preferences="$apt/empty/none" -o APT::Architecture=amd64
                -o Acquire::Languages=none -o APT::Sandbox::User=root)
    say "$ver: looking up the kernel of Debian $suite ($(mirror))"
    apt-get "${opts[@]}" update >/dev/null || die "apt-get update for $suite failed"
    pkg=$(apt-cache "${opts[@]}" depends linux-image-amd64 |
          awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [[ -n $pkg ]] || die "Debian $suite's linux-image-amd64 names no kernel package"
    rel=${pkg#linux-image-}
    mkdir -p "$CACHE"
    temporary "$CACHE"   # beside the cache: the unpacked tree is renamed into place
    say "$ver: downloading $pkg"
    (cd "$TMP_DIR" && apt-get "${opts[@]}" download "$pkg" >/dev/null) || die "cannot download $pkg"
    x=$TMP_DIR/x
    dpkg-deb -x "$TMP_DIR"/*.deb "$x"
    # trixie ships the modules under /usr/lib, older suites under /lib: one layout here
    if [[ -d $x/usr/lib/modules ]]; then mkdir -p "$x/lib" && mv "$x/usr/lib/modules" "$x/lib/"; fi
    rm -rf "$x/usr"
    [[ -f $x/boot/vmlinuz-$rel && -d $x/lib/modules/$rel ]] || die "$pkg has no vmlinuz-$rel or modules"
    depmod -b "$x" "$rel"
    if grep -q '^CONFIG_PVH=y' "$x/boot/config-$rel" && unpack_vmlinux "$x/boot/vmlinuz-$rel" "$x/boot/vmlinux-$rel"; then :
    else rm -f "$x/boot/vmlinux-$rel"; say "$ver: no PVH kernel; booting the bzImage (slower)"; fi
    echo "$rel" > "$x/release"
    rm -rf "$dir" && mv "$x" "$dir"
    say "$ver: $rel in $dir ($(du -sh "$dir" | cut -f1))"
}

cmd_fetch() {
    local ver
    [[ $# -gt 0 ]] || set -- "${VERSIONS[@]}"
    for ver in "$@"; do known "$ver"; done
    need_packages kmod zstd xz-utils
    for ver in "$@"; do fetch_one "$ver"; done
}

cmd_list() {
    local ver
    printf '%-6s %-9s %-24s %s\n' kernel suite release cached
    for ver in "${VERSIONS[@]}"; do
        if fetched "$ver"; then
            printf '%-6s %-9s %-24s %s\n' "$ver" "${SUITE[$ver]}" "$(<"$CACHE/$ver/release")" "$CACHE/$ver"
        else
            printf '%-6s %-9s %-24s %s\n' "$ver" "${SUITE[$ver]}" - "no (scripts/kernels.sh fetch $ver)"
        fi
    done
}

# The base initramfs of a kernel, cached beside it: busybox, the init, and the modules that 9p and the
# overlay need (with their dependencies, decompressed, in load order). Sets INITRAMFS.
initramfs() {
    local dir=$CACHE/$1 rel busybox=/bin/busybox key root m kind path name   # busybox-static's
    rel=$(<"$dir/release")
    local modules="virtio_pci 9pnet_virtio 9p overlay"
    key=$({ echo "$modules"; cat "$HERE/init" "$busybox"; } | cksum | cut -d' ' -f1)
    INITRAMFS=$dir/initramfs-$key.cpio
    [[ -s $INITRAMFS ]] && return
    temporary
    root=$TMP_DIR
    mkdir -p "$root"/{bin,dev,proc,sys,modules}
    cp "$busybox" "$root/bin/busybox"
    install -m 755 "$HERE/init" "$root/init"
    : > "$root/modules/order"
    for m in $modules; do
        modprobe -d "$dir" -S "$rel" --show-depends "$m" | while read -r kind path _; do
            [[ $kind == insmod ]] || continue
            name=$(basename "$path"); name=${name%.ko*}.ko
            [[ -e $root/modules/$name ]] && continue
            case $path in
                *.xz) xz -dc "$path" ;;
                *.zst) zstd -dcq "$path" ;;
                *) cat "$path" ;;
            esac > "$root/modules/$name"
            echo "$name" >> "$root/modules/order"
        done
    done
    (cd "$root" && find . | busybox cpio -o -H newc) > "$INITRAMFS.$$" && mv "$INITRAMFS.$$" "$INITRAMFS"
    for m in "$dir"/initramfs-*.cpio; do [[ $m == "$INITRAMFS" ]] || rm -f "$m"; done
}

console_tail() {
    if [[ -s $1 ]]; then echo "---- the guest's console (last 30 lines) ----" >&2; tail -n 30 "$1" >&2
    else echo "kernels.sh: the guest's console is empty: the kernel did not start (too little memory?)" >&2; fi
}

cmd_run() {
    local shares=() console= ver d
    while [[ $# -gt 0 ]]; do
        case $1 in
            --rw) d=$(realpath -e "${2:?--rw needs a directory}") && [[ -d $d ]] || die "--rw $2: no such directory"
                  shares+=("$d"); shift 2 ;;
            --console) console=${2:?--console needs a file}; shift 2 ;;
            *) break ;;
        esac
    done
    [[ $# -ge 1 ]] || usage
    ver=$1; shift
    known "$ver"
    [[ ${1:-} == -- ]] && shift
    [[ $# -ge 1 ]] || usage
    need_packages qemu-system-x86 busybox-static kmod
    fetched "$ver" || cmd_fetch "$ver"
    local dir=$CACHE/$ver rel kernel t n=0 virtfs firmware=()
    rel=$(<"$dir/release")
    kernel=$dir/boot/vmlinuz-$rel
    [[ -s $dir/boot/vmlinux-$rel ]] && kernel=$dir/boot/vmlinux-$rel
    initramfs "$ver"
    # qboot starts a kernel faster than SeaBIOS
    [[ -r /usr/share/qemu/qboot.rom ]] && firmware=(-bios /usr/share/qemu/qboot.rom)

    temporary
    t=$TMP_DIR
    # the host's / read-only; ',' is doubled in QEMU's option values
    virtfs=(-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap)
    : > "$t/shares"
    for d in "${shares[@]}"; do
        echo "share$n $d" >> "$t/shares"
        virtfs+=(-virtfs "local,path=${d//,/,,},mount_tag=share$n,security_model=none,multidevs=remap")
        n=$((n + 1))
    done
    printf 'GUEST_%s=%q\n' PATH "$PATH" CWD "$PWD" MODULES "$dir/lib/modules/$rel" HOST "kernels-$ver" > "$t/env"
    { printf exec; printf ' %q' "$@"; echo; } > "$t/cmd"
    (cd "$t" && printf '%s\n' env cmd shares | busybox cpio -o -H newc) > "$t/initrd"
    cat "$INITRAMFS" >> "$t/initrd"

    : > "$t/console"; : > "$t/status"
    local status=0 rc= why=
    # stdout and stderr go straight to ours (QEMU's fd sets 1 and 2); QEMU's own messages to qemu.err
    timeout -k 5 "${KERNELS_TIMEOUT:-600}" qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
        -accel tcg,thread=multi -cpu "${KERNELS_CPU:-qemu64}" -smp "${KERNELS_CPUS:-1}" -m "${KERNELS_MEM:-2048}" \
        "${firmware[@]}" -kernel "$kernel" -initrd "$t/initrd" \
        -append "console=ttyS0 8250.nr_uarts=4 panic=-1 oops=panic random.trust_cpu=on loglevel=4 ${KERNELS_APPEND:-}" \
        "${virtfs[@]}" \
        -serial "file:$t/console" \
        -add-fd fd=5,set=1 -chardev file,id=out,path=/dev/fdset/1,append=on -serial chardev:out \
        -add-fd fd=6,set=2 -chardev file,id=err,path=/dev/fdset/2,append=on -serial chardev:err \
        -serial "file:$t/status" \
        5>&1 6>&2 </dev/null >"$t/qemu.err" 2>&1 &
    QEMU_PID=$!
    wait "$QEMU_PID" || status=$?
    QEMU_PID=
    [[ -n $console ]] && cp "$t/console" "$console"
    read -r rc why < "$t/status" || true
    if [[ $status == 124 ]]; then
        say "$ver: killed after ${KERNELS_TIMEOUT:-600} s (KERNELS_TIMEOUT)"; console_tail "$t/console"; return 124
    fi
    if ! [[ $rc =~ ^[0-9]+$ ]] || [[ -n $why ]]; then
        say "$ver: the guest ended without the command's status (QEMU exited $status${why:+; init: $why})"
        cat "$t/qemu.err" >&2
        console_tail "$t/console"
        return 125
    fi
    return "$rc"
}

# Reads the attributes of the JUnit report's elements.
JUNIT_AWK='
    function attr(s, k) { return match(s, " " k "=\"[^\"]*\"") ? substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 4) : "" }
    function text(s) {
        gsub(/&#10;/, " | ", s); gsub(/&#8594;/, "->", s); gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s)
        gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&amp;/, "\\&", s)
        return length(s) > 400 ? substr(s, 1, 400) "..." : s
    }'

# The refused and skipped programs of a --check output (one line each: "REJECTED prog: reason", where the
# reason is the end of the verifier's log, "SKIPPED prog: why this kernel cannot have it"), grouped by reason.
CHECK_AWK='
    /^(REJECTED|SKIPPED) / {
        name = $2; sub(/:$/, "", name); r = $0; sub(/^[A-Z]+ +[^ ]+ /, "", r)
        if (length(r) > 300) r = substr(r, 1, 300) "..."
        k = $1 ": " r; count[k]++; names[k] = names[k] (names[k] == "" ? "" : " ") name
    }
    END { for (k in count) printf "%s: %d %s: %s\n", v, count[k], k, names[k] }'

# The table's row of one kernel, from the files the guest wrote into the log directory.
summary_row() {
    local ver=$1 logs=$2 wall=$3 rel=- checked=- tests=none boot=-
    [[ -s $logs/$ver.release ]] && rel=$(<"$logs/$ver.release")
    [[ -s $logs/$ver.boot ]] && boot=$(<"$logs/$ver.boot")s
    [[ -s $logs/$ver.check ]] &&
        checked=$(awk '/BPF programs passed the verifier/ { n = match($0, /; [0-9]+ not for this kernel/) ? substr($0, RSTART + 2) + 0 : 0
                                                            print $1 "/" $3 "+" n }' "$logs/$ver.check")
    # per test, not per issue (the report's "failures" counts issues)
    [[ -s $logs/$ver.xml ]] && tests=$(awk '
        /<testcase / { n++ }
        /<failure/ { failed[n] = 1 }
        /<skipped/ { skipped[n] = 1 }
        END { for (i in failed) f++; for (i in skipped) s++; print n - f - s "/" f + 0 "/" s + 0 }' "$logs/$ver.xml")
    printf '%-6s %-24s %-13s %-18s %-7s %s\n' "$ver" "$rel" "${checked:--}" "$tests" "$boot" "${wall}s"
}

# What went wrong on one kernel: the rejected programs with the verifier's reason, the failed tests.
summary_details() {
    local ver=$1 logs=$2 status=$3
    [[ -s $logs/$ver.check ]] && awk -v v="$ver" "$CHECK_AWK" "$logs/$ver.check"
    if [[ ! -s $logs/$ver.xml ]]; then
        echo "$ver: no test report (exit $status): see $logs/$ver.log and $ver.console"
        return
    fi
    awk -v v="$ver" "$JUNIT_AWK"'
        function flush() {
            if (issues > 0) printf("%s: FAILED %s (%d issue%s): %s\n", v, name, issues, issues > 1 ? "s" : "", first)
            issues = 0
        }
        /<testcase / { flush(); name = attr($0, "name") }
        /<failure/ { if (issues++ == 0) first = text(attr($0, "message")) }
        /<skipped/ { why = $0; sub(/.*<skipped[^>]*>/, "", why); sub(/<\/skipped>.*/, "", why)
                     print v ": skipped " name (why == "" || why ~ /^[[:space:]]*$/ ? "" : ": " text(why)) }
        END { flush() }' "$logs/$ver.xml"
}

cmd_matrix() {
    local logs=${KERNELS_LOGS:-$BUILD/kernels} jobs=${KERNELS_JOBS:-$(nproc)} ver f failed=0
    local tests=$BUILD/debug/skbtrailPackageTests.xctest recorder=${SKBTRAIL_RECORDER:-$BUILD/debug/skbtrail-record}
    declare -A started=() wall=() statuses=()
    [[ $# -gt 0 ]] || set -- "${VERSIONS[@]}"
    for ver in "$@"; do known "$ver"; done
    for f in "$tests" "$recorder"; do
        [[ -x $f ]] || die "no $f: run 'swift build --build-tests' first (or set SKBTRAIL_BUILD)"
    done
    recorder=$(realpath "$recorder")
    need_packages qemu-system-x86 busybox-static kmod
    cmd_fetch "$@"
    mkdir -p "$logs"
    logs=$(realpath "$logs")

    # One kernel finished: its status and time.
    reap() {
        local pid= status=0 v
        wait -n -p pid "${!RUNNING[@]}" || status=$?
        v=${RUNNING[$pid]}
        unset "RUNNING[$pid]"
        wall[$v]=$((SECONDS - started[$v]))
        statuses[$v]=$status
        [[ $status == 0 ]] || failed=1
        say "$v: exited $status after ${wall[$v]} s"
    }
    for ver in "$@"; do
        while [[ ${#RUNNING[@]} -ge $jobs ]]; do reap; done
        say "$ver: booting $(<"$CACHE/$ver/release") for --check and the RecorderTests (log: $logs/$ver.log)"
        rm -f "$logs/$ver".{log,console,check,xml,boot,release}
        : > "$logs/$ver.log"
        started[$ver]=$SECONDS
        KERNELS_TIMEOUT=${KERNELS_TIMEOUT:-1800} "$0" run --rw "$logs" --console "$logs/$ver.console" "$ver" -- \
            bash "$HERE/matrix-guest.sh" "$ver" "$logs" "$recorder" "$tests" > "$logs/$ver.log" 2>&1 &
        RUNNING[$!]=$ver
        # the output streams here too, each line after its kernel when several run at once
        if [[ $jobs == 1 ]]; then tail -n +1 -f --pid=$! "$logs/$ver.log" &
        else tail -n +1 -f --pid=$! "$logs/$ver.log" | sed -u "s/^/$ver| /" & fi
        TAILS+=($!)
    done
    while [[ ${#RUNNING[@]} -gt 0 ]]; do reap; done
    wait "${TAILS[@]}" 2>/dev/null || true
    TAILS=()

    echo
    printf '%-6s %-24s %-13s %-18s %-7s %s\n' kernel release "ok/tried+n/a" "tests ok/fail/skip" boot wall
    for ver in "$@"; do summary_row "$ver" "$logs" "${wall[$ver]}"; done
    echo
    for ver in "$@"; do summary_details "$ver" "$logs" "${statuses[$ver]}"; done
    echo "logs: $logs"
    return "$failed"
}

case ${1:-} in
    list) shift; cmd_list "$@" ;;
    fetch) shift; cmd_fetch "$@" ;;
    run) shift; cmd_run "$@" ;;
    matrix) shift; cmd_matrix "$@" ;;
    *) usage ;;
esac
