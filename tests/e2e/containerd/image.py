#!/usr/bin/env python3
"""Writes OCI image archives (the layout `ctr images import` and `docker load` take) built offline
from the host's busybox-static, for the containerd end-to-end tests and benchmark.

    image.py multi OUT.tar NAME             multi-layer image with whiteouts and opaque dirs
    image.py pause OUT.tar NAME             busybox whose entrypoint sleeps (a CRI sandbox image)
    image.py big OUT.tar NAME [--layers N] [--files N] [--mb N]
                                            busybox plus N layers of synthetic files (benchmark)

NAME is a full reference (docker.io/e2e/multi:1); it is written as the io.containerd.image.name
and org.opencontainers.image.ref.name annotations, so both ctr and docker name the image.

The multi image's layers, in order:
  0 busybox rootfs: /bin (busybox and its applets), /etc/{passwd,group,config.txt},
    /data/{old,keep}.txt, /tobedeleted/dir/file, /tmp (1777)
  1 /a/file, /a/sub/x, /b/sub/y, /c/old/z, /c/keep; /q with d1 d2 d3 d4 h; /own (1000:1000, 0750),
    /suid (4755), /link -> data/keep.txt, /x/attr with the xattr user.e2e=yes           (gzip)
  2 /a/.wh.file (deletes /a/file)                                                      (plain tar)
  3 /.wh.b (deletes /b)                                                                (gzip)
  4 /c opaque (marker first) with /c/new/w: /c/old and /c/keep are gone                (gzip)
  5 /q/d1/.wh.gone, /q/d2 opaque (marker first) + new, /q/d3 opaque (marker after its children)
    + new, /q/.wh.d4, hardlink /q/h/link -> /q/h/file, AUFS bookkeeping entries        (gzip)
  6 /q/d4/again (a path re-created after a whiteout)                                   (gzip)
The expected tree is in tests/e2e/containerd/lib.sh (MULTI_EXPECTED).
"""
import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile

MTIME = 1700000000
BUSYBOX = "/bin/busybox"


def add(tar, name, kind=tarfile.REGTYPE, data=b"", mode=None, linkname="", uid=0, gid=0, xattrs=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    if mode is None:
        mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mode = mode
    info.mtime = MTIME
    info.uid, info.gid = uid, gid
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_layer(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def busybox_layer(tar):
    D, S = tarfile.DIRTYPE, tarfile.SYMTYPE
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for d in ["bin", "etc", "data", "tobedeleted", "tobedeleted/dir", "root", "proc", "sys", "dev"]:
        add(tar, d, D)
    add(tar, "tmp", D, mode=0o1777)
    add(tar, "bin/busybox", data=busybox, mode=0o755)
    for a in sorted(set(applets)):
        if a != "busybox":
            add(tar, "bin/" + a, S, linkname="busybox", mode=0o777)
    add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    add(tar, "etc/group", data=b"root:x:0:\n")
    add(tar, "etc/config.txt", data=b"config\n")
    add(tar, "data/old.txt", data=b"old\n")
    add(tar, "data/keep.txt", data=b"keep\n")
    add(tar, "tobedeleted/dir/file", data=b"deep\n")


def multi_layers():
    D = tarfile.DIRTYPE

    def l1(tar):
        for d in ["a", "a/sub", "b", "b/sub", "c", "c/old", "q", "q/d1", "q/d2", "q/d2/sub", "q/d3", "q/d4", "q/h", "x"]:
            add(tar, d, D)
        add(tar, "a/file", data=b"1\n")
        add(tar, "a/sub/x", data=b"2\n")
        add(tar, "b/sub/y", data=b"3\n")
        add(tar, "c/old/z", data=b"4\n")
        add(tar, "c/keep", data=b"keep\n")
        add(tar, "q/d1/gone", data=b"gone\n")
        add(tar, "q/d1/kept", data=b"kept\n")
        add(tar, "q/d2/old", data=b"old\n")
        add(tar, "q/d2/sub/deep", data=b"deep\n")
        add(tar, "q/d3/old", data=b"old3\n")
        add(tar, "q/d4/back", data=b"first\n")
        add(tar, "q/h/orig", data=b"orig\n")
        add(tar, "own", D, mode=0o750, uid=1000, gid=1000)
        add(tar, "own/file", data=b"mine\n", mode=0o600, uid=1000, gid=1000)
        add(tar, "suid", data=b"#!/bin/sh\n", mode=0o4755)
        add(tar, "link", tarfile.SYMTYPE, linkname="data/keep.txt", mode=0o777)
        add(tar, "x/attr", data=b"attr\n", xattrs={"user.e2e": "yes"})

    def l2(tar):
        add(tar, "a", D)
        add(tar, "a/.wh.file")

    def l3(tar):
        add(tar, ".wh.b")

    def l4(tar):
        add(tar, "c/.wh..wh..opq")
        add(tar, "c", D)
        add(tar, "c/new", D)
        add(tar, "c/new/w", data=b"5\n")

    def l5(tar):
        add(tar, "q/d1", D)
        add(tar, "q/d1/.wh.gone")
        add(tar, "q/d2/.wh..wh..opq")
        add(tar, "q/d2", D)
        add(tar, "q/d2/new", data=b"new2\n")
        add(tar, "q/d3", D)
        add(tar, "q/d3/new", data=b"new3\n")
        add(tar, "q/d3/.wh..wh..opq")
        add(tar, "q/.wh.d4")
        add(tar, "q/h", D)
        add(tar, "q/h/file", data=b"linked\n")
        add(tar, "q/h/link", tarfile.LNKTYPE, linkname="q/h/file")
        add(tar, ".wh..wh.plnk", D)
        add(tar, ".wh..wh.aufs")

    def l6(tar):
        add(tar, "q", D)
        add(tar, "q/d4", D)
        add(tar, "q/d4/again", data=b"again\n")

    return [
        (make_layer(busybox_layer), True),
        (make_layer(l1), True),
        (make_layer(l2), False),
        (make_layer(l3), True),
        (make_layer(l4), True),
        (make_layer(l5), True),
        (make_layer(l6), True),
    ]


def big_layers(layers, files, mb):
    """busybox, then `layers` layers that share `files` files and about `mb` MiB between them:
    mostly small files in a deep-ish tree (as real distributions ship), a few large ones."""
    rng = random.Random(42)
    out = [(make_layer(busybox_layer), True)]
    per_layer = max(1, files // layers)
    big_bytes = mb * 1024 * 1024
    small_size = 2048
    small_total = files * small_size
    large_total = max(0, big_bytes - small_total)
    large_per_layer = large_total // layers
    for n in range(layers):
        def build(tar, n=n):
            seen = set()
            for i in range(per_layer):
                d = f"usr/share/l{n}/d{i % 97:02d}/e{i % 13:02d}"
                for k in range(len(d.split("/"))):
                    p = "/".join(d.split("/")[: k + 1])
                    if p not in seen:
                        seen.add(p)
                        add(tar, p, tarfile.DIRTYPE)
                size = rng.randint(small_size // 2, small_size * 3 // 2)
                add(tar, f"{d}/f{i}", data=rng.randbytes(size // 2) * 2)
            if large_per_layer:
                add(tar, "usr/lib", tarfile.DIRTYPE)
                # Compressible (as binaries and text are) yet not trivially: repeated random blocks.
                block = rng.randbytes(64 * 1024)
                add(tar, f"usr/lib/blob-{n}", data=(block * (large_per_layer // len(block) + 1))[:large_per_layer])

        out.append((make_layer(build), True))
    return out


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci(out, name, layers, config_extra=None):
    blobs = {}

    def blob(data):
        d = sha(data)
        blobs[d] = data
        return d

    layer_descs, diff_ids = [], []
    for data, compress in layers:
        diff_ids.append(sha(data))
        if compress:
            z = gzip.compress(data, compresslevel=1, mtime=0)
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(z), "size": len(z)})
        else:
            layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(data), "size": len(data)})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {k: v for k, v in dict({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"}, **(config_extra or {})).items() if v is not None},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"image.py layer {i}"} for i in range(len(layers))],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
            "layers": layer_descs,
        },
        sort_keys=True,
    ).encode()
    mdesc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(manifest),
        "size": len(manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
    }
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [mdesc]}).encode()
    layout = b'{"imageLayoutVersion":"1.0.0"}'

    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as archive:
        def put(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = MTIME
            archive.addfile(info, io.BytesIO(data))

        put("oci-layout", layout)
        put("index.json", index)
        for d, data in blobs.items():
            put("blobs/sha256/" + d.split(":", 1)[1], data)
    os.replace(tmp, out)


def main(argv):
    if len(argv) < 4 or argv[1] not in ("multi", "pause", "big"):
        sys.stderr.write(__doc__)
        return 2
    kind, out, name = argv[1:4]
    if kind == "multi":
        write_oci(out, name, multi_layers())
    elif kind == "pause":
        write_oci(out, name, [(make_layer(busybox_layer), True)], {"Cmd": None, "Entrypoint": ["/bin/sleep", "2147483647"]})
    else:
        opts = {"--layers": 8, "--files": 30000, "--mb": 300}
        rest = argv[4:]
        while rest:
            if rest[0] not in opts or len(rest) < 2:
                sys.stderr.write(__doc__)
                return 2
            opts[rest[0]] = int(rest[1])
            rest = rest[2:]
        write_oci(out, name, big_layers(opts["--layers"], opts["--files"], opts["--mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
