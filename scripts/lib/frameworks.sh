# Sourced by scripts/test: real third-party frameworks, from the npm registry, for the tests of
# other platforms' conventions (gateway/tests/server/conventions.rs): an Express app must answer
# its own routes through the real Express, not a look-alike. Pinned by version; npm checks each
# tarball against the registry's integrity field. Kept outside the clone, fetched once per
# machine. Sets CONTAINERPUB_TEST_EXPRESS to a directory holding `node_modules/express`; prints
# a `skipped:` line and leaves it unset only when npm cannot reach the registry.
express_version=4.21.2
express_dir="${CONTAINERPUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/containerpub}/express-$express_version"

fetch_express() {
    if [ ! -f "$express_dir/node_modules/express/package.json" ]; then
        local work
        work=$(mktemp -d /tmp/containerpub-express.XXXXXX)
        # --ignore-scripts: nothing of the package runs here; the tests upload its files.
        if ! (cd "$work" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "express@$express_version" >"$work/npm.log" 2>&1); then
            echo "skipped: the Express convention test: npm could not install express@$express_version ($(head -1 "$work/npm.log"))"
            rm -rf "$work"
            return 0
        fi
        # Links are refused in uploads, and node_modules/.bin holds only links to command-line tools.
        rm -rf "$work/node_modules/.bin"
        mkdir -p "$(dirname "$express_dir")"
        rm -rf "$express_dir"
        mv "$work" "$express_dir"
    fi
    export CONTAINERPUB_TEST_EXPRESS="$express_dir"
    echo "scripts/test: Express $express_version for the convention tests"
}
fetch_express

# Python packages as pip installs them for a function (`pip install --target`), for the test that
# deploys them vendored: requests (pure Python, with charset_normalizer's compiled modules) and
# pydantic (pydantic-core's native wheel). Wheels only, for the interpreter the workers use.
# Sets CONTAINERPUB_TEST_PYTHON_PACKAGES; a `skipped:` line when pip cannot reach the index.
python_packages_dir="${CONTAINERPUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/containerpub}/python-packages-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

fetch_python_packages() {
    if [ ! -d "$python_packages_dir/pydantic" ] || [ ! -d "$python_packages_dir/requests" ]; then
        local work
        work=$(mktemp -d /tmp/containerpub-python-packages.XXXXXX)
        if ! python3 -m pip install --quiet --disable-pip-version-check --only-binary=:all: --target "$work/tree" \
            "requests==2.32.3" "pydantic==2.10.6" >"$work/pip.log" 2>&1; then
            echo "skipped: the vendored Python packages test: pip could not install requests and pydantic ($(grep -m1 -i error "$work/pip.log"))"
            rm -rf "$work"
            return 0
        fi
        rm -rf "$work/tree/bin"
        mkdir -p "$(dirname "$python_packages_dir")"
        rm -rf "$python_packages_dir"
        mv "$work/tree" "$python_packages_dir"
        rm -rf "$work"
    fi
    export CONTAINERPUB_TEST_PYTHON_PACKAGES="$python_packages_dir"
    echo "scripts/test: requests and pydantic for the vendored-packages test"
}
fetch_python_packages
