#!/bin/bash
# Make sure the fleet's module-signing key exists and print the paths of the
# key and its certificate. The lab key is generated once, outside the git tree
# (never committed); a real deployment sets VPSNET_MODULE_SIGNING_KEY (a PEM
# file or a pkcs11: URI, as the kernel's sign-file takes) and
# VPSNET_MODULE_SIGNING_CERT (PEM or DER) and nothing is generated.
# Usage: module-signing-key.sh DIR   -> prints "KEY CERT"
#   DIR/vpsnet-fleet.key   private key, mode 0600
#   DIR/vpsnet-fleet.crt   X.509 certificate, PEM (shipped in the repository)
#   DIR/vpsnet-fleet.der   the same, DER (what mokutil --import and db enrolment take)
set -euo pipefail
dir=$1

if [ -n "${VPSNET_MODULE_SIGNING_KEY:-}" ]; then
	cert=${VPSNET_MODULE_SIGNING_CERT:?VPSNET_MODULE_SIGNING_KEY is set, VPSNET_MODULE_SIGNING_CERT is not}
	case "$VPSNET_MODULE_SIGNING_KEY" in
		pkcs11:*) ;;
		*) [ -r "$VPSNET_MODULE_SIGNING_KEY" ] || {
			echo "module-signing-key.sh: cannot read VPSNET_MODULE_SIGNING_KEY=$VPSNET_MODULE_SIGNING_KEY" >&2
			exit 1; } ;;
	esac
	[ -r "$cert" ] || { echo "module-signing-key.sh: cannot read VPSNET_MODULE_SIGNING_CERT=$cert" >&2; exit 1; }
	echo "$VPSNET_MODULE_SIGNING_KEY $cert"
	exit 0
fi

case "$dir" in
	"$(git rev-parse --show-toplevel 2>/dev/null || echo /nonexistent)"/*)
		git check-ignore -q "$dir" || {
			echo "module-signing-key.sh: $dir is inside the git tree and not ignored" >&2
			exit 1
		} ;;
esac
key=$dir/vpsnet-fleet.key crt=$dir/vpsnet-fleet.crt der=$dir/vpsnet-fleet.der
if [ ! -s "$key" ] || [ ! -s "$crt" ] || [ ! -s "$der" ]; then
	mkdir -p "$dir"
	chmod 700 "$dir"
	tmp=$(mktemp -d "$dir/.new.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	# What the kernel's own certs/default_x509.genkey asks for, plus codeSigning
	# (shim and the machine keyring accept it; RSA so every kernel verifies it).
	openssl req -new -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes -utf8 \
		-subj "/O=vpsnet/CN=vpsnet lab fleet module signing key" \
		-addext "basicConstraints=critical,CA:FALSE" \
		-addext "keyUsage=digitalSignature" \
		-addext "extendedKeyUsage=codeSigning" \
		-addext "subjectKeyIdentifier=hash" \
		-keyout "$tmp/key" -out "$tmp/crt" 2>/dev/null
	openssl x509 -in "$tmp/crt" -outform DER -out "$tmp/der"
	chmod 600 "$tmp/key"
	chmod 644 "$tmp/crt" "$tmp/der"
	mv "$tmp/crt" "$crt"
	mv "$tmp/der" "$der"
	mv "$tmp/key" "$key"
fi
echo "$key $crt"
