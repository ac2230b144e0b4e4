#!/bin/bash
# Make sure a repository signing key exists in a private GNUPGHOME (created
# outside the git tree; never committed) and print its fingerprint.
# Usage: signing-key.sh GNUPGHOME
set -euo pipefail
export GNUPGHOME=$1
uid=${VPSNET_SIGNING_UID:-vpsnet lab repository signing key <vpsnet-lab@example.org>}

case "$GNUPGHOME" in
	"$(git rev-parse --show-toplevel 2>/dev/null || echo /nonexistent)"/*)
		git check-ignore -q "$GNUPGHOME" || {
			echo "signing-key.sh: $GNUPGHOME is inside the git tree and not ignored" >&2
			exit 1
		} ;;
esac
mkdir -p "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
fpr() { gpg --batch --with-colons --list-secret-keys "$uid" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'; }
if [ -z "$(fpr)" ]; then
	# rsa3072: verifiable by every rpm still in use (EdDSA needs rpm >= 4.16).
	gpg --batch --quiet --passphrase '' --quick-gen-key "$uid" rsa3072 sign 2y >&2
fi
fpr
