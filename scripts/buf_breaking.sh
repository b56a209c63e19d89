#!/usr/bin/env bash
# buf breaking (WIRE_JSON) of the working tree against a git ref (default: main).
# The third-party protos are not in git, so the ref's protos are built into an image
# together with the same build/third_party copy; both sides are compared as images.
set -euo pipefail
ref="${1:-main}"
root="$(git rev-parse --show-toplevel)"
buf="$root/node_modules/.bin/buf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$ref" proto buf.yaml | tar -x -C "$tmp"
mkdir -p "$tmp/build" && cp -r "$root/build/third_party" "$tmp/build/"
(cd "$tmp" && "$buf" build -o image.binpb)
cd "$root" && "$buf" build -o "$tmp/current.binpb"
"$buf" breaking "$tmp/current.binpb" --against "$tmp/image.binpb" --config buf.yaml
echo "buf breaking against $ref: no breaking changes"
