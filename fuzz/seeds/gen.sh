#!/usr/bin/env bash
# Regenerates the committed seed corpora of the fuzz targets (small: a few KiB each) from what
# real tools write: GNU tar in every format it has (V7, USTAR, GNU, old GNU, PAX, every sparse
# version), Python's tarfile for whiteouts and hostile names, Go's archive/tar (the fixtures of
# crates/strata-archive/tests/fixtures/go-tar), gzip and zstd. Run from anywhere:
#   fuzz/seeds/gen.sh
# Needs GNU tar, python3, gzip, zstd (Debian: tar python3 gzip zstd). GNU tar's output changes
# with its version, so the bytes may differ from the committed ones; any of them is a fine seed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
go_fixtures="$here/../../crates/strata-archive/tests/fixtures/go-tar"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarseeds="$here/tar"
rm -rf "$tarseeds" "$here/apply" "$here/decompress" "$here/image_archive" "$here/plugin_request"
mkdir -p "$tarseeds" "$here/apply" "$here/decompress" "$here/image_archive" "$here/plugin_request"

# A small tree: a directory, files, a symlink, a hardlink, a long path, a non-ASCII name.
src="$work/src"
mkdir -p "$src/etc" "$src/usr/share/$(printf 'd%.0s' {1..60})/$(printf 'e%.0s' {1..60})"
printf 'strata\n' > "$src/etc/hostname"
printf 'x' > "$src/usr/share/$(printf 'd%.0s' {1..60})/$(printf 'e%.0s' {1..60})/file-with-a-long-path"
printf 'é\n' > "$src/etc/caf$(printf '\xc3\xa9')"
ln -s ../etc/hostname "$src/etc/link"
ln "$src/etc/hostname" "$src/etc/hard"
python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.fuzz', b'seed')" "$src/etc/hostname"
touch -d @1600000000 "$src" "$src"/etc/* "$src/etc"
# A sparse file: data, a hole, data (more than 4 fragments would need old-GNU extension
# blocks: five).
python3 - "$src/sparse" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(5):
        f.seek(i * 8192)
        f.write(bytes([i + 65]) * 10)
    f.truncate(5 * 8192 + 100)
PY

gnu() { # NAME ARGS...: a GNU tar archive of the tree, 512-byte records
  local name=$1; shift
  tar -C "$src" -b 1 --sort=name --owner=0 --group=0 --mtime=@1600000000 "$@" -cf "$tarseeds/$name" etc usr
}
# V7 has no room for the long path: etc only.
tar -C "$src" -b 1 --sort=name --owner=0 --group=0 --mtime=@1600000000 --format=v7 -cf "$tarseeds/v7.tar" etc
gnu ustar.tar --format=ustar
gnu gnu.tar --format=gnu
gnu oldgnu.tar --format=oldgnu
gnu pax.tar --format=posix --xattrs --xattrs-include='user.*' --pax-option=delete=atime,delete=ctime
sparse() { # NAME ARGS...
  local name=$1; shift
  tar -C "$src" -b 1 --sparse --owner=0 --group=0 "$@" -cf "$tarseeds/$name" sparse
}
sparse sparse-oldgnu.tar --format=gnu
sparse sparse-pax-0.0.tar --format=posix --sparse-version=0.0 --pax-option=delete=atime,delete=ctime
sparse sparse-pax-0.1.tar --format=posix --sparse-version=0.1 --pax-option=delete=atime,delete=ctime
sparse sparse-pax-1.0.tar --format=posix --sparse-version=1.0 --pax-option=delete=atime,delete=ctime

cp "$go_fixtures/closed.tar" "$tarseeds/go-closed.tar"
cp "$go_fixtures/unclosed.tar" "$tarseeds/go-unclosed.tar"

# Layer conventions and hostile names, written with Python's tarfile.
python3 - "$tarseeds" "$here/apply" <<'PY'
import io, os, sys, tarfile
tar_dir, apply_dir = sys.argv[1], sys.argv[2]

def archive(path, entries, fmt=tarfile.PAX_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.mtime = e.get("mtime", 1600000000)
            info.mode = e.get("mode", 0o644)
            info.uid, info.gid = e.get("owner", (0, 0))
            info.type = e.get("type", tarfile.REGTYPE)
            info.linkname = e.get("link", "")
            info.devmajor, info.devminor = e.get("dev", (0, 0))
            info.pax_headers = e.get("pax", {})
            data = e.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if data else None)
    data = b.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512) + b"\0" * 1024  # tarfile pads to 10 KiB; keep 2 blocks
    with open(path, "wb") as f:
        f.write(data)

D, S, H, C, B, F = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE
archive(f"{tar_dir}/whiteouts.tar", [
    {"name": "etc/", "type": D, "mode": 0o755},
    {"name": "etc/.wh.passwd"},
    {"name": "etc/.wh..wh..opq"},
    {"name": "var/", "type": D, "mode": 0o1777, "owner": (1000, 1000)},
    {"name": "var/kept", "data": b"kept\n"},
    {"name": ".wh..wh.plnk/", "type": D},
    {"name": ".wh..wh.plnk/1234", "data": b"shared\n", "mode": 0o4755},
    {"name": "bin/a", "type": H, "link": ".wh..wh.plnk/1234"},
    {"name": "bin/b", "type": H, "link": ".wh..wh.plnk/1234"},
    {"name": ".wh..wh.aufs"},
])
archive(f"{tar_dir}/kinds.tar", [
    {"name": "dev/", "type": D},
    {"name": "dev/null", "type": C, "dev": (1, 3), "mode": 0o666},
    {"name": "dev/loop0", "type": B, "dev": (7, 0), "mode": 0o660, "owner": (0, 6)},
    {"name": "run/fifo", "type": F, "mode": 0o600},
    {"name": "suid", "mode": 0o4755, "owner": (1000, 1001), "data": b"#!/bin/sh\n"},
    {"name": "caps", "data": b"x", "pax": {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
    {"name": "times", "data": b"t", "pax": {"mtime": "-1.5", "atime": "1700000000.25"}},
    {"name": "big", "owner": (3000000, 3000000), "data": b"b"},
], fmt=tarfile.PAX_FORMAT)
archive(f"{tar_dir}/gnu-bignum.tar", [
    {"name": "big-uid", "owner": (2**31, 5), "data": b"u"},
], fmt=tarfile.GNU_FORMAT)
# Hostile: names and links that try to leave the root. The sandbox path is the apply
# target's default (scripts/fuzz sets STRATA_FUZZ_DIR=/tmp/strata-fuzz).
sandbox = "/tmp/strata-fuzz/apply"
archive(f"{apply_dir}/escape-names.tar", [
    {"name": "../canary", "data": b"pwned"},
    {"name": "a/../../canary", "data": b"pwned"},
    {"name": "/../outside/canary", "data": b"inside"},
])
archive(f"{apply_dir}/escape-symlinks.tar", [
    {"name": "up", "type": S, "link": ".."},
    {"name": "up/canary", "data": b"pwned"},
    {"name": "abs", "type": S, "link": sandbox},
    {"name": "abs/canary", "data": b"pwned"},
    {"name": "direct", "type": S, "link": sandbox + "/canary"},
    {"name": "direct", "data": b"replaces the link only"},
    {"name": "proc", "type": S, "link": "/proc/self/root" + sandbox},
    {"name": "proc/canary", "data": b"pwned"},
])
archive(f"{apply_dir}/escape-hardlinks.tar", [
    {"name": "h1", "type": H, "link": "../canary"},
    {"name": "h2", "type": H, "link": sandbox + "/canary"},
    {"name": "s", "type": S, "link": "/"},
    {"name": "h3", "type": H, "link": "s/../canary"},
])
archive(f"{apply_dir}/replace.tar", [
    {"name": "d/", "type": D},
    {"name": "d/f", "data": b"1"},
    {"name": "d", "data": b"file over dir"},
    {"name": "d/", "type": D, "mode": 0o700},
    {"name": "l", "type": S, "link": "d"},
    {"name": "l/x", "data": b"through a link"},
    {"name": ".wh.l"},
    {"name": "d/.wh..wh..opq"},
])
PY

# Compressed streams: gzip (one and two members), zstd (one and two frames), and the magic of
# the refused formats.
t="$tarseeds/whiteouts.tar"
gzip -9nc "$t" > "$here/decompress/whiteouts.tar.gz"
{ gzip -nc "$tarseeds/v7.tar"; gzip -nc "$tarseeds/ustar.tar"; } > "$here/decompress/two-members.gz"
zstd -q -19 -c "$t" > "$here/decompress/whiteouts.tar.zst"
{ zstd -q -c "$tarseeds/v7.tar"; zstd -q -c "$tarseeds/ustar.tar"; } > "$here/decompress/two-frames.zst"
printf '\xfd7zXZ\0rest' > "$here/decompress/xz-magic"
printf 'BZh91AY&SY' > "$here/decompress/bzip2-magic"
cp "$tarseeds/v7.tar" "$here/decompress/plain.tar"

# Image archives in the image_archive target's text form (see its header).
layer1="$tarseeds/v7.tar"
layer2="$tarseeds/whiteouts.tar"
{
  printf '=== manifest.json\n'
  printf '[{"Config":"config.json","RepoTags":["fuzz:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}]\n'
  printf '=== config.json\n'
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:@diffhex(l1/layer.tar)","sha256:@diffhex(l2/layer.tar)"]}}\n'
  printf '=== l1/layer.tar\n'; cat "$layer1"; printf '\n'
  printf '=== l2/layer.tar\n'; cat "$layer2"
} > "$here/image_archive/docker-save"
{
  printf '=== oci-layout\n{"imageLayoutVersion":"1.0.0"}\n'
  printf '=== index.json\n'
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:@hex(blobs/sha256/@hex(.)#list)","size":@size(blobs/sha256/@hex(.)#list),"annotations":{"io.containerd.image.name":"docker.io/library/fuzz:1"}}]}\n'
  printf '=== blobs/sha256/@hex(.)#list\n'
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:@hex(blobs/sha256/@hex(.)#arm)","size":1,"platform":{"architecture":"arm64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:@hex(blobs/sha256/@hex(.)#manifest)","size":@size(blobs/sha256/@hex(.)#manifest),"platform":{"architecture":"amd64","os":"linux"}}]}\n'
  printf '=== blobs/sha256/@hex(.)#manifest\n'
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:@hex(blobs/sha256/@hex(.)#config)","size":@size(blobs/sha256/@hex(.)#config)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:@hex(blobs/sha256/@hex(.)#gz)","size":@size(blobs/sha256/@hex(.)#gz)},{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:@hex(blobs/sha256/@hex(.)#zst)","size":@size(blobs/sha256/@hex(.)#zst)}]}\n'
  printf '=== blobs/sha256/@hex(.)#config\n'
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:@diffhex(blobs/sha256/@hex(.)#gz)","sha256:@diffhex(blobs/sha256/@hex(.)#zst)"]}}\n'
  printf '=== blobs/sha256/@hex(.)#gz\n'; gzip -nc "$layer1"; printf '\n'
  printf '=== blobs/sha256/@hex(.)#zst\n'; zstd -q -c "$layer2"
} > "$here/image_archive/oci-nested-index"

# Plugin requests as dockerd sends them, and ApplyDiff queries.
p="$here/plugin_request"
printf '{"Home":"/var/lib/docker/strata","Opts":["overlay2.size=1G"],"UIDMaps":[{"container_id":0,"host_id":100000,"size":65536}],"GIDMaps":null}' > "$p/init"
printf '{"ID":"abc","Parent":"def","MountLabel":"","StorageOpt":{"size":"10M"}}' > "$p/create"
printf '{"ID":"abc"}' > "$p/get"
printf 'null' > "$p/null"
printf 'id=abc%%2Fx&parent=&junk=%%zz' > "$p/query"
