#!/usr/bin/env python3
"""Writes a docker-save archive whose layers use what real images ship and Docker accepts:
AUFS whiteouts (.wh.NAME), opaque markers placed before a directory's entries and after its
children, a hardlink inside a layer, a path re-created after an earlier layer whited it out,
and a layer tar without end-of-archive blocks (as umoci 0.4.7 writes them).

    quirky_image.py BASE_ROOTFS_TAR OUT.tar TAG

The first layer is BASE_ROOTFS_TAR (a busybox rootfs); the expected tree is in
tests/e2e/docker/run (case_quirky).
"""
import hashlib
import io
import json
import sys
import tarfile


def entry(tar, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else mode
    info.mtime = 1700000000
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer(build, truncate=False):
    buf = io.BytesIO()
    tar = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    build(tar)
    end = tar.offset  # end of the last member's data, before the end-of-archive blocks
    tar.close()
    data = buf.getvalue()
    return data[:end] if truncate else data


def base_extra(tar):
    D = tarfile.DIRTYPE
    for d in ["q", "q/d1", "q/d2", "q/d2/sub", "q/d3", "q/d4", "q/h"]:
        entry(tar, d, D)
    entry(tar, "q/d1/gone", data=b"gone\n")
    entry(tar, "q/d1/kept", data=b"kept\n")
    entry(tar, "q/d2/old", data=b"old\n")
    entry(tar, "q/d2/sub/deep", data=b"deep\n")
    entry(tar, "q/d3/old", data=b"old3\n")
    entry(tar, "q/d4/back", data=b"first\n")
    entry(tar, "q/h/orig", data=b"orig\n")


def whiteouts(tar):
    D = tarfile.DIRTYPE
    entry(tar, "q/d1", D)
    entry(tar, "q/d1/.wh.gone")
    # Opaque marker before the directory's entries.
    entry(tar, "q/d2/.wh..wh..opq")
    entry(tar, "q/d2", D)
    entry(tar, "q/d2/new", data=b"new2\n")
    # Opaque marker after the directory's children.
    entry(tar, "q/d3", D)
    entry(tar, "q/d3/new", data=b"new3\n")
    entry(tar, "q/d3/.wh..wh..opq")
    entry(tar, "q/.wh.d4")
    # A hardlink to a file of the same layer.
    entry(tar, "q/h", D)
    entry(tar, "q/h/file", data=b"linked\n")
    entry(tar, "q/h/link", tarfile.LNKTYPE, linkname="q/h/file")
    # AUFS bookkeeping entries that must be skipped.
    entry(tar, ".wh..wh.plnk", D)
    entry(tar, ".wh..wh.aufs")


def recreate(tar):
    D = tarfile.DIRTYPE
    entry(tar, "q", D)
    entry(tar, "q/d4", D)
    entry(tar, "q/d4/again", data=b"again\n")


def main():
    base_path, out, tag = sys.argv[1:4]
    with open(base_path, "rb") as f:
        layers = [f.read(), layer(base_extra), layer(whiteouts), layer(recreate, truncate=True)]
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(out, "w") as archive:
        for name, data in [("manifest.json", manifest), (config_name, config)] + list(zip(names, layers)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            archive.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
