#!/bin/bash
# Build the signed apt and dnf repositories from the packages in DIST.
# Usage: mkrepo.sh DIST GNUPGHOME REPO_URL SUITE
#   DIST/*.deb           -> DIST/repo/apt  (apt-ftparchive; InRelease + Release.gpg)
#   DIST/*.{noarch,x86_64}.rpm -> DIST/repo/rpm  (rpmsign'ed packages, createrepo_c,
#                                           detached repodata/repomd.xml.asc)
#   DIST/repo/vpsnet-archive-keyring.{gpg,asc}  public key only
#   DIST/repo/vpsnet-fleet.{crt,der}  the fleet's module-signing certificate
#                        ($VPSNET_MODULE_CERT: what the prebuilt modules are signed with)
#   DIST/repo/vpsnet.sources, DIST/repo/vpsnet.repo  client configuration
# Every version present in DIST is published (for upgrade/downgrade tests).
set -euo pipefail

dist=$(realpath "$1") gnupghome=$2 url=${3%/} suite=${4:-bookworm}
here=$(dirname "$(realpath "$0")")
repo=$dist/repo
export GNUPGHOME=$gnupghome

shopt -s nullglob
debs=("$dist"/*.deb)
rpms=("$dist"/*.noarch.rpm "$dist"/*.x86_64.rpm)
[ ${#debs[@]} -gt 0 ] || { echo "mkrepo.sh: no .deb in $dist (run make packages)" >&2; exit 1; }
[ ${#rpms[@]} -gt 0 ] || { echo "mkrepo.sh: no .noarch.rpm in $dist (run make packages)" >&2; exit 1; }

fpr=$("$here/signing-key.sh" "$gnupghome")
# Stop the gpg-agent this script caused to start in that private home.
trap 'gpgconf --kill gpg-agent 2>/dev/null || :' EXIT
rm -rf "$repo"
mkdir -p "$repo/apt/pool/main/v/vpsnet" "$repo/rpm"

# Public key only: binary keyring for apt's Signed-By, armored for rpm/dnf.
gpg --batch --export "$fpr" >"$repo/vpsnet-archive-keyring.gpg"
gpg --batch --armor --export "$fpr" >"$repo/vpsnet-archive-keyring.asc"
if [ -n "${VPSNET_MODULE_CERT:-}" ]; then
	openssl x509 -in "$VPSNET_MODULE_CERT" -out "$repo/vpsnet-fleet.crt"
	openssl x509 -in "$VPSNET_MODULE_CERT" -outform DER -out "$repo/vpsnet-fleet.der"
fi

# --- apt -------------------------------------------------------------------
cp "${debs[@]}" "$repo/apt/pool/main/v/vpsnet/"
(
	cd "$repo/apt"
	for arch in amd64 arm64; do
		d=dists/$suite/main/binary-$arch
		mkdir -p "$d"
		apt-ftparchive --arch "$arch" packages pool >"$d/Packages"
		gzip -9n <"$d/Packages" >"$d/Packages.gz"
	done
	apt-ftparchive \
		-o "APT::FTPArchive::Release::Origin=vpsnet" \
		-o "APT::FTPArchive::Release::Label=vpsnet" \
		-o "APT::FTPArchive::Release::Suite=$suite" \
		-o "APT::FTPArchive::Release::Codename=$suite" \
		-o "APT::FTPArchive::Release::Architectures=amd64 arm64" \
		-o "APT::FTPArchive::Release::Components=main" \
		-o "APT::FTPArchive::Release::Description=vpsnet packages" \
		release "dists/$suite" >"dists/$suite/Release.tmp"
	mv "dists/$suite/Release.tmp" "dists/$suite/Release"
	gpg --batch --yes --local-user "$fpr" --digest-algo SHA512 \
		--clearsign -o "dists/$suite/InRelease" "dists/$suite/Release"
	gpg --batch --yes --local-user "$fpr" --digest-algo SHA512 \
		--armor --detach-sign -o "dists/$suite/Release.gpg" "dists/$suite/Release"
)
cat >"$repo/vpsnet.sources" <<SOURCES
# /etc/apt/sources.list.d/vpsnet.sources
# Key: install $url/vpsnet-archive-keyring.gpg as /etc/apt/keyrings/vpsnet-archive-keyring.gpg
Types: deb
URIs: $url/apt
Suites: $suite
Components: main
Signed-By: /etc/apt/keyrings/vpsnet-archive-keyring.gpg
SOURCES

# --- dnf -------------------------------------------------------------------
cp "${rpms[@]}" "$repo/rpm/"
GPG_TTY= rpmsign --addsign \
	--define "_gpg_name $fpr" \
	--define "_gpg_path $GNUPGHOME" \
	--define "__gpg /usr/bin/gpg" \
	"$repo"/rpm/*.rpm >/dev/null
createrepo_c --quiet --simple-md-filenames "$repo/rpm"
gpg --batch --yes --local-user "$fpr" --armor --detach-sign \
	-o "$repo/rpm/repodata/repomd.xml.asc" "$repo/rpm/repodata/repomd.xml"
cat >"$repo/vpsnet.repo" <<REPO
# /etc/yum.repos.d/vpsnet.repo
[vpsnet]
name=vpsnet
baseurl=$url/rpm
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=$url/vpsnet-archive-keyring.asc
REPO

echo "repository in $repo (key $fpr)"
