#!/usr/bin/env bash
# Fetch the official Twilio Voice JS SDK (npm: @twilio/voice-sdk) for the console's browser
# phone into .cache/voice-sdk/ (git-ignored; never committed). Idempotent: nothing happens
# when the pinned version is already there. The tarball is checked against the pinned
# integrity (the registry's sha512), so a changed package is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.18.5
INTEGRITY="sha512-2/tw1IDAIn7j6yFDOln8p93v3aHIxNIN93JwL98cHIlbkSNeU/Jt9zGM/0TvDpNjo+k88lvAew4jgOjKlc9/KA=="
dest=.cache/voice-sdk
stamp="$dest/VERSION"
if [ -f "$dest/twilio.min.js" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VERSION" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-voice-sdk: npm is not installed; the console's phone will be offline" >&2
  exit 1
fi
echo "==> fetching @twilio/voice-sdk@$VERSION (the console's browser phone)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@twilio/voice-sdk@$VERSION" >/dev/null 2>&1)
tarball="$work/twilio-voice-sdk-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "ensure-voice-sdk: integrity mismatch for @twilio/voice-sdk@$VERSION" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist/twilio.min.js package/LICENSE.md
mkdir -p "$dest"
cp "$work/package/dist/twilio.min.js" "$dest/twilio.min.js.tmp"
cp "$work/package/LICENSE.md" "$dest/LICENSE.md"
mv "$dest/twilio.min.js.tmp" "$dest/twilio.min.js"
echo "$VERSION" > "$stamp"
