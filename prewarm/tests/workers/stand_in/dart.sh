#!/bin/sh
# A stand-in for `dart`, for tests about commands and files only: it records how it was called
# and writes the files the real tool would (a package config, an "executable"). No Dart code runs.
STATE="__STATE__"
printf 'cwd=%s args=%s PATH=%s HOME=%s PUB_CACHE=%s LANG=%s SECRET=%s\n' \
  "$PWD" "$*" "$PATH" "$HOME" "$PUB_CACHE" "$LANG" "${CONTAINERPUB_TEST_SERVER_SECRET:-}" >> "$STATE/calls"
case "$1 $2" in
  "--version "*)
    cat "$STATE/version"
    exit 0 ;;
  "pub get")
    if [ -f "$STATE/pub-sleep" ]; then sleep 30; fi
    if [ -f "$STATE/pub-fails" ]; then
      echo "Resolving dependencies..." >&2
      echo "Because fn depends on nope any which doesn't exist (could not find package nope at https://pub.dev), version solving failed." >&2
      exit 65
    fi
    if [ "$3" = "--offline" ] && [ ! -f "$PUB_CACHE/hosted-marker" ]; then
      echo "Because fn depends on postgres any which doesn't exist (could not find package postgres in cache), version solving failed." >&2
      exit 69
    fi
    mkdir -p .dart_tool "$PUB_CACHE"
    touch "$PUB_CACHE/hosted-marker"
    printf '{"configVersion":2,"packages":[{"name":"postgres","rootUri":"file://%s/hosted/pub.dev/postgres-3.0.0","packageUri":"lib/"},{"name":"fn","rootUri":"../","packageUri":"lib/"}]}\n' "$PUB_CACHE" > .dart_tool/package_config.json
    echo "Got dependencies!"
    exit 0 ;;
  "compile exe")
    if [ -f "$STATE/compile-fails" ]; then echo "main.dart:3:1: Error: Expected ';' after this." >&2; exit 254; fi
    out=""; previous=""
    for argument in "$@"; do
      if [ "$previous" = "-o" ]; then out="$argument"; fi
      previous="$argument"
    done
    printf '#!/bin/sh\nexit 0\n' > "$out"
    chmod +x "$out"
    exit 0 ;;
esac
echo "the stand-in dart does not know: $*" >&2
exit 2
