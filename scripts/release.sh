#!/usr/bin/env bash
# Release files for VERSION (from Cargo.toml) in dist/, laid out as the
# Terraform and OpenTofu registries read them from a GitHub release:
#   terraform-provider-rdsrot_VERSION_<os>_<arch>.zip   one per platform, holding only
#                                                       terraform-provider-rdsrot_vVERSION(.exe)
#   terraform-provider-rdsrot_VERSION_manifest.json     terraform-registry-manifest.json
#   terraform-provider-rdsrot_VERSION_SHA256SUMS        sums of the zips and the manifest
#   terraform-provider-rdsrot_VERSION_SHA256SUMS.sig    binary detached GPG signature of the SUMS
#
# Inputs (environment):
#   RELEASE_BINARIES_DIR  where binaries lie as cargo lays them out for
#                         `--target`: <dir>/<rust triple>/release/terraform-provider-rdsrot(.exe)
#                         (default: target)
#   RELEASE_BINARY        the host platform's binary (default: the first of
#                         <dir>/<host triple>/release/... and target/release/...)
#   RELEASE_PLATFORMS     empty: pack every platform that has a binary;
#                         `all`: the five below, failing when one is missing;
#                         or a list such as "linux_amd64 darwin_arm64"
#   RELEASE_GPG_KEY       fingerprint of the signing key in the keyring GNUPGHOME
#                         names; unset: no .sig, and the release says so
#   RELEASE_GPG_PASSPHRASE  the key's passphrase, when it has one (read by gpg
#                         from a pipe, never from the command line)
#   DIST_DIR              output directory (default: dist)
set -euo pipefail
cd "$(dirname "$0")/.."

name=terraform-provider-rdsrot
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
binaries_dir=${RELEASE_BINARIES_DIR:-target}
dist=${DIST_DIR:-dist}
prefix="${name}_${version}"

fail() {
    echo "release: $*" >&2
    exit 1
}

[ -n "$version" ] || fail "no version in Cargo.toml"

# Registry platform (Go's GOOS_GOARCH) and the Rust target that builds it.
all_platforms=(darwin_amd64 darwin_arm64 linux_amd64 linux_arm64 windows_amd64)
rust_target() {
    case "$1" in
        darwin_amd64) echo x86_64-apple-darwin ;;
        darwin_arm64) echo aarch64-apple-darwin ;;
        linux_amd64) echo x86_64-unknown-linux-gnu ;;
        linux_arm64) echo aarch64-unknown-linux-gnu ;;
        windows_amd64) echo x86_64-pc-windows-msvc ;;
        *) return 1 ;;
    esac
}
exe_suffix() {
    case "$1" in windows_*) echo .exe ;; *) echo "" ;; esac
}

host_platform() {
    local os arch
    case "$(uname -s)" in
        Linux) os=linux ;;
        Darwin) os=darwin ;;
        MINGW* | MSYS* | CYGWIN* | Windows_NT) os=windows ;;
        *) os=unknown ;;
    esac
    case "$(uname -m)" in
        x86_64 | amd64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) arch=unknown ;;
    esac
    echo "${os}_${arch}"
}
host=$(host_platform)

# The binary for platform $1, or nothing when there is none.
binary_for() {
    local platform=$1 suffix candidate
    suffix=$(exe_suffix "$platform")
    if [ "$platform" = "$host" ] && [ -n "${RELEASE_BINARY:-}" ]; then
        echo "$RELEASE_BINARY"
        return
    fi
    candidate="$binaries_dir/$(rust_target "$platform")/release/$name$suffix"
    if [ ! -f "$candidate" ] && [ "$platform" = "$host" ]; then
        candidate="target/release/$name$suffix"
    fi
    if [ -f "$candidate" ]; then echo "$candidate"; fi
}

case "${RELEASE_PLATFORMS:-}" in
    "") wanted=("${all_platforms[@]}") required=false ;;
    all) wanted=("${all_platforms[@]}") required=true ;;
    *)
        read -r -a wanted <<<"${RELEASE_PLATFORMS//,/ }"
        required=true
        ;;
esac

platforms=()
binaries=()
missing=()
for platform in "${wanted[@]}"; do
    rust_target "$platform" >/dev/null ||
        fail "unknown platform $platform (known: ${all_platforms[*]})"
    binary=$(binary_for "$platform")
    if [ -n "$binary" ]; then
        platforms+=("$platform")
        binaries+=("$binary")
    else
        missing+=("$platform ($binaries_dir/$(rust_target "$platform")/release/$name$(exe_suffix "$platform"))")
    fi
done

if [ "$required" = true ] && [ ${#missing[@]} -gt 0 ]; then
    printf 'release: missing binaries for %d platform(s):\n' ${#missing[@]} >&2
    printf '  %s\n' "${missing[@]}" >&2
    fail "build them (cargo build --release --target TRIPLE) or set RELEASE_BINARIES_DIR"
fi
[ ${#platforms[@]} -gt 0 ] ||
    fail "no binary for any platform: build one first (cargo build --release)"

# Zips keep the executable bit: Terraform runs the file as extracted.
python=
if [ -x .venv/bin/python ]; then
    python="$PWD/.venv/bin/python"
elif command -v python3 >/dev/null; then
    python=python3
fi
make_zip() { # zip path, directory, file in it
    if [ -n "$python" ]; then
        (cd "$2" && "$python" -m zipfile -c "$1" "$3")
    else
        command -v zip >/dev/null || fail "neither python3 nor zip is installed"
        (cd "$2" && zip -q -X "$1" "$3")
    fi
}

sha256() {
    if command -v sha256sum >/dev/null; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT

# Files of an earlier run of this version (another platform, an old
# signature) would otherwise be published with sums that do not cover them.
rm -f "$dist/${prefix}"_*

packed=()
for i in "${!platforms[@]}"; do
    platform=${platforms[$i]}
    member="${name}_v${version}$(exe_suffix "$platform")"
    mkdir "$staging/$platform"
    cp "${binaries[$i]}" "$staging/$platform/$member"
    # Build artifacts copied between CI jobs lose their mode.
    chmod 0755 "$staging/$platform/$member"
    make_zip "$dist/${prefix}_${platform}.zip" "$staging/$platform" "$member"
    packed+=("${prefix}_${platform}.zip")
    echo "release: $platform from ${binaries[$i]}"
done
cp terraform-registry-manifest.json "$dist/${prefix}_manifest.json"
(cd "$dist" && sha256 "${packed[@]}" "${prefix}_manifest.json" >"${prefix}_SHA256SUMS")

sums="$dist/${prefix}_SHA256SUMS"
if [ -n "${RELEASE_GPG_KEY:-}" ]; then
    gpg_sign=(gpg --batch --yes --pinentry-mode loopback --local-user "$RELEASE_GPG_KEY"
        --output "$sums.sig" --detach-sign)
    if [ -n "${RELEASE_GPG_PASSPHRASE:-}" ]; then
        printf '%s' "$RELEASE_GPG_PASSPHRASE" | "${gpg_sign[@]}" --passphrase-fd 0 "$sums"
    else
        "${gpg_sign[@]}" "$sums" </dev/null
    fi
    gpg --batch --verify "$sums.sig" "$sums" 2>/dev/null ||
        fail "gpg made a signature that it does not verify"
    signed="signed by $RELEASE_GPG_KEY"
else
    signed="NOT SIGNED (no RELEASE_GPG_KEY): the registries refuse a release without ${prefix}_SHA256SUMS.sig"
fi

echo "release: $version written to $dist, $signed"
(cd "$dist" && ls -l "${prefix}"_* && sha256 -c "${prefix}_SHA256SUMS")
