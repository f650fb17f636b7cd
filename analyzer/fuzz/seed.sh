#!/usr/bin/env bash
# Seeds the fuzzing corpus with the entry file of every analyzer fixture.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/dart_front_end
for entry in ../tests/fixtures/*/package/main.dart; do
    case_name=$(basename "$(dirname "$(dirname "$entry")")")
    cp "$entry" "corpus/dart_front_end/$case_name.dart"
done
echo "seeded $(ls corpus/dart_front_end | wc -l) inputs"
