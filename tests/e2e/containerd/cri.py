#!/usr/bin/python3
"""Drives containerd's CRI plugin over its gRPC API (runtime.v1), as a kubelet would, without
Kubernetes: one pod with host networking and one container on IMAGE.

    cri.py PROTO SOCKET IMAGE EXPECTED_FILE SCRIPT LOGDIR

PROTO is the CRI api.proto (Debian's golang-github-kubernetes-cri-api-dev, fetched by
scripts/engines); the Python stubs are generated from it at run time with grpc_tools. The
container must see exactly the tree in EXPECTED_FILE when it runs SCRIPT; its stats must report the
bytes it writes in its writable layer; the image filesystem must be reported; and after removal no
container or sandbox may be left. Prints one line per step; exits non-zero on the first failure.
Needs Debian's python3-grpcio and python3-grpc-tools (run with /usr/bin/python3).
"""
import hashlib
import importlib
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc


def stubs(proto):
    """Compiles PROTO (without its gogoproto options, which only steer Go code generation)."""
    with open(proto, encoding="utf-8") as f:
        text = f.read()
    text = "\n".join(l for l in text.splitlines() if "gogoproto" not in l) + "\n"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = os.path.join(tempfile.gettempdir(), "strata-cri-stubs-" + key)
    if not os.path.exists(os.path.join(out, "api_pb2_grpc.py")):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "api.proto"), "w", encoding="utf-8") as f:
            f.write(text)
        rc = protoc.main(["protoc", "-I" + out, "--python_out=" + out, "--grpc_python_out=" + out, os.path.join(out, "api.proto")])
        if rc != 0:
            sys.exit(f"protoc failed on {proto}")
    sys.path.insert(0, out)
    return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")


def step(msg):
    print(msg, flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def main():
    proto, sock, image, expected_file, script, logdir = sys.argv[1:7]
    pb, pbg = stubs(proto)
    channel = grpc.insecure_channel("unix://" + sock)
    rt = pbg.RuntimeServiceStub(channel)
    im = pbg.ImageServiceStub(channel)
    T = 60

    v = rt.Version(pb.VersionRequest(version="v1"), timeout=T)
    step(f"runtime {v.runtime_name} {v.runtime_version}, CRI {v.runtime_api_version}")

    st = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), timeout=T)
    if not st.image.id:
        fail(f"image {image} unknown to CRI")
    step(f"image {image}: {st.image.id[:19]}, {st.image.size} bytes")

    pod_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="e2e-pod", uid="e2e-pod-uid", namespace="e2e", attempt=0),
        log_directory=logdir,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.POD, ipc=pb.POD)
            )
        ),
    )
    pod = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config), timeout=T).pod_sandbox_id
    step(f"RunPodSandbox (host network): {pod[:12]}")

    ctr_config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="e2e-ctr", attempt=0),
        image=pb.ImageSpec(image=image),
        command=["/bin/sh", "-c", "echo started > /started; exec sleep 600"],
        log_path="e2e-ctr.log",
    )
    cid = rt.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod, config=ctr_config, sandbox_config=pod_config), timeout=T
    ).container_id
    step(f"CreateContainer: {cid[:12]}")
    rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=T)
    step("StartContainer")

    def exec_sync(cmd):
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=30), timeout=T)
        if r.exit_code != 0:
            fail(f"exec {cmd} exited {r.exit_code}: {r.stderr.decode(errors='replace')}")
        return r.stdout.decode()

    deadline = time.time() + 30
    while exec_sync(["/bin/sh", "-c", "cat /started 2>/dev/null || true"]).strip() != "started":
        if time.time() > deadline:
            fail("the container did not start its command")
        time.sleep(0.2)

    with open(expected_file, encoding="utf-8") as f:
        expected = f.read()
    got = exec_sync(["/bin/sh", "-c", script])
    if got != expected:
        import difflib

        fail("tree seen by the container differs:\n" + "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True), "expected", "got")))
    step("ExecSync: the container sees the image's exact tree")

    size = 2_000_000
    exec_sync(["/bin/sh", "-c", f"head -c {size} /dev/urandom > /written && sync"])
    # The CRI plugin refreshes snapshot usage in the background (stats_collect_period).
    deadline = time.time() + 40
    while True:
        s = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=T).stats
        used = s.writable_layer.used_bytes.value
        if size <= used < size + 512 * 1024:
            break
        if time.time() > deadline:
            fail(f"ContainerStats writable layer: {used} bytes used, want about {size} (the written file); stats: {s}")
        time.sleep(0.5)
    step(f"ContainerStats: writable layer {used} bytes, {s.writable_layer.inodes_used.value} inodes, on {s.writable_layer.fs_id.mountpoint!r}")

    fs = im.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=T)
    if not fs.image_filesystems:
        fail("ImageFsInfo reports no image filesystem")
    f0 = fs.image_filesystems[0]
    if f0.used_bytes.value <= 0:
        fail(f"ImageFsInfo: nothing used: {f0}")
    want_mp = os.environ.get("CRI_IMAGEFS")
    if want_mp and f0.fs_id.mountpoint != want_mp:
        fail(f"ImageFsInfo mountpoint {f0.fs_id.mountpoint!r}, want {want_mp!r}")
    step(f"ImageFsInfo: {f0.fs_id.mountpoint} {f0.used_bytes.value} bytes, {f0.inodes_used.value} inodes")

    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2), timeout=T)
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=T)
    step("StopContainer, RemoveContainer")
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=T)
    step("StopPodSandbox, RemovePodSandbox")

    left_c = rt.ListContainers(pb.ListContainersRequest(), timeout=T).containers
    left_p = rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=T).items
    if left_c or left_p:
        fail(f"left after removal: containers {[c.id for c in left_c]}, sandboxes {[p.id for p in left_p]}")
    step("nothing left: no container, no sandbox")


if __name__ == "__main__":
    main()
