#!/bin/sh
# A stand-in for `dart`, for tests about commands and files only: it records how it was called
# and writes the files the real tool would (a package config, an "executable"), with a private
# umask as a careful tool might. Run by the ELF `bin/dart` beside it (launcher.c). No Dart code
# runs here, but `compile exe` copies `$STATE/worker-executable` as the build's output when there
# is one (a real Dart executable).
STATE="__STATE__"
umask 077
printf 'cwd=%s args=%s PATH=%s HOME=%s PUB_CACHE=%s LANG=%s SECRET=%s\n' \
  "$PWD" "$*" "$PATH" "$HOME" "$PUB_CACHE" "$LANG" "${CONTAINERPUB_TEST_SERVER_SECRET:-}" >> "$STATE/calls"
case "$1 $2" in
  "--version "*)
    cat "$STATE/version"
    exit 0 ;;
  "pub get")
    if [ -f "$STATE/pub-sleep" ]; then sleep 30; fi
    if [ "$3" = "--offline" ] && [ -f "$STATE/pub-offline-sleep" ]; then sleep "$(cat "$STATE/pub-offline-sleep")"; fi
    if [ "$3" != "--offline" ] && [ -f "$STATE/pub-online-sleep" ]; then sleep 30; fi
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
    if [ -f "$STATE/compile-fails" ]; then
      # The front end's messages (on stdout, with the path it was given), then dartdev's own.
      echo "$PWD/main.dart:3:1: Error: Expected ';' after this."
      echo "  return {}"
      echo "file://$PWD/../containerpub_entry.dart:5:41: Error: Undefined name 'handler'."
      echo "Error: AOT compilation failed" >&2
      echo "Generating AOT kernel dill failed!" >&2
      exit 254
    fi
    out=""; previous=""
    for argument in "$@"; do
      if [ "$previous" = "-o" ]; then out="$argument"; fi
      previous="$argument"
    done
    if [ -f "$STATE/worker-executable" ]; then
      cp "$(cat "$STATE/worker-executable")" "$out"
    else
      printf '#!/bin/sh\nexit 0\n' > "$out"
    fi
    chmod 700 "$out"
    exit 0 ;;
esac
echo "the stand-in dart does not know: $*" >&2
exit 2
