# Sourced by scripts/test: real third-party packages, from the npm registry and PyPI, for the tests
# that deploy them (gateway/tests/server/conventions.rs, dependencies.rs): an Express app must
# answer its own routes through the real Express, and vendored Python packages must be what pip
# installs, not look-alikes. Pinned by version (npm and pip check each download against the
# index's hashes), kept outside the clone, fetched once per machine.

cache_root="${CONTAINERPUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/containerpub}"

# install_into_cache DIR WHAT COMMAND…: runs COMMAND in an empty directory it installs into, then
# keeps that directory as DIR. Links to command-line tools are dropped (uploads
# refuse links, and no test needs a tool). Returns 1, with a `skipped:` line naming WHAT and the
# tool's first error, when COMMAND fails (no registry here).
install_into_cache() {
    local dir=$1 what=$2 work
    shift 2
    work=$(mktemp -d /tmp/containerpub-packages.XXXXXX)
    mkdir "$work/tree"
    if ! (cd "$work/tree" && "$@") >"$work/log" 2>&1; then
        echo "skipped: $what: could not install ($(grep -m1 -i -E 'err|error' "$work/log" || head -1 "$work/log"))"
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work/tree/node_modules/.bin" "$work/tree/bin"
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir"
    mv "$work/tree" "$dir"
    rm -rf "$work"
}

# Express, for the convention test. --ignore-scripts: nothing of the package runs here; the test
# uploads its files. Sets CONTAINERPUB_TEST_EXPRESS to a directory holding node_modules/express.
express_version=4.21.2
express_dir="$cache_root/express-$express_version"
if [ -f "$express_dir/node_modules/express/package.json" ] ||
    install_into_cache "$express_dir" "the Express convention test" \
        npm install --ignore-scripts --no-audit --no-fund --loglevel=error "express@$express_version"; then
    export CONTAINERPUB_TEST_EXPRESS="$express_dir"
    echo "scripts/test: Express $express_version for the convention tests"
fi

# requests (pure Python, with charset_normalizer's compiled modules) and pydantic (pydantic-core's
# native wheel) as `pip install --target` lays them out for a function; wheels only, for the
# interpreter the workers use. Sets CONTAINERPUB_TEST_PYTHON_PACKAGES.
python_packages_dir="$cache_root/python-packages-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if { [ -d "$python_packages_dir/pydantic" ] && [ -d "$python_packages_dir/requests" ]; } ||
    install_into_cache "$python_packages_dir" "the vendored Python packages test" \
        python3 -m pip install --quiet --disable-pip-version-check --only-binary=:all: --target . \
        "requests==2.32.3" "pydantic==2.10.6"; then
    export CONTAINERPUB_TEST_PYTHON_PACKAGES="$python_packages_dir"
    echo "scripts/test: requests and pydantic for the vendored-packages test"
fi
