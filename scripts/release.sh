#!/usr/bin/env bash
# Release files as the Terraform Registry expects them, in dist/:
#   terraform-provider-rdsrot_VERSION_linux_amd64.zip   the binary, named terraform-provider-rdsrot_vVERSION
#   terraform-provider-rdsrot_VERSION_manifest.json     from terraform-registry-manifest.json (protocol 6.0)
#   terraform-provider-rdsrot_VERSION_SHA256SUMS        sums of the two above; `sha256sum -c` accepts it
# The registry also wants the SUMS file signed (SHA256SUMS.sig): sign it with
# the project's GPG key outside this script.
#
# RELEASE_BINARY (default target/release/terraform-provider-rdsrot) and
# DIST_DIR (default dist) override the inputs and the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."

name=terraform-provider-rdsrot
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
os_arch=linux_amd64
binary=${RELEASE_BINARY:-target/release/$name}
dist=${DIST_DIR:-dist}
python=python3
[ -x .venv/bin/python ] && python="$PWD/.venv/bin/python"

[ -n "$version" ] || { echo "release: no version in Cargo.toml" >&2; exit 1; }
[ -x "$binary" ] || { echo "release: $binary is missing: build it first (cargo build --release)" >&2; exit 1; }

mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT

prefix="${name}_${version}"
cp "$binary" "$staging/${name}_v${version}"
chmod 0755 "$staging/${name}_v${version}"
rm -f "$dist/${prefix}_${os_arch}.zip"
(cd "$staging" && "$python" -m zipfile -c "$dist/${prefix}_${os_arch}.zip" "${name}_v${version}")
cp terraform-registry-manifest.json "$dist/${prefix}_manifest.json"
(cd "$dist" && sha256sum "${prefix}_${os_arch}.zip" "${prefix}_manifest.json" > "${prefix}_SHA256SUMS")

echo "release: $version written to $dist:"
(cd "$dist" && ls -l "${prefix}"_* && sha256sum -c "${prefix}_SHA256SUMS")
