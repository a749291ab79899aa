// snapbench times snapshotter calls through containerd's snapshots service, as containerd's own
// clients make them (ctr, the unpacker, CRI): Prepare, Commit and Remove of snapshots on a given
// parent, and Usage of a large active snapshot (FILES files written through its mounts) and of
// that snapshot once committed. (Remove is timed too, but through containerd it only drops
// containerd's record; the snapshotter's Remove comes later from the garbage collector.) Used by scripts/bench-containerd; prints one JSON object of
// median milliseconds. Needs root (it mounts the large snapshot to fill it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "", "containerd's socket")
	ns := flag.String("namespace", "bench", "containerd namespace")
	name := flag.String("snapshotter", "", "snapshotter name")
	parent := flag.String("parent", "", "committed snapshot the prepared ones sit on")
	n := flag.Int("n", 50, "Prepare/Commit/Remove iterations")
	files := flag.Int("files", 20000, "files written into the large snapshot")
	usageN := flag.Int("usage-n", 20, "Usage calls")
	work := flag.String("work", os.TempDir(), "scratch directory (mount point)")
	flag.Parse()
	if err := run(*address, *ns, *name, *parent, *n, *files, *usageN, *work); err != nil {
		fmt.Fprintln(os.Stderr, "snapbench:", err)
		os.Exit(1)
	}
}

func median(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	m := d[len(d)/2]
	if len(d)%2 == 0 {
		m = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	return float64(m.Microseconds()) / 1000
}

func timed(out *[]time.Duration, f func() error) error {
	t0 := time.Now()
	err := f()
	*out = append(*out, time.Since(t0))
	return err
}

func run(address, ns, name, parent string, n, files, usageN int, work string) error {
	ctx := namespaces.WithNamespace(context.Background(), ns)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dctx, dialer.DialAddress(address),
		// As containerd dials its proxy plugins.
		grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer.ContextDialer))
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	defer conn.Close()
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), name)
	// gc.root keeps containerd's collector off the benchmark's snapshots while they live.
	keep := snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "bench"})
	tag := fmt.Sprintf("bench-%d", time.Now().UnixNano())

	var prep, commit, remove []time.Duration
	for i := 0; i < n; i++ {
		a, c := fmt.Sprintf("%s-a%d", tag, i), fmt.Sprintf("%s-c%d", tag, i)
		if err := timed(&prep, func() error { _, err := sn.Prepare(ctx, a, parent, keep); return err }); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		if err := timed(&commit, func() error { return sn.Commit(ctx, c, a, keep) }); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := timed(&remove, func() error { return sn.Remove(ctx, c) }); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
	}

	// A large active snapshot: FILES small files in a tree, written through its mounts.
	big := tag + "-big"
	mounts, err := sn.Prepare(ctx, big, parent, keep)
	if err != nil {
		return fmt.Errorf("prepare large: %w", err)
	}
	defer sn.Remove(ctx, big)
	dir := filepath.Join(work, big)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := mount.All(mounts, dir); err != nil {
		return fmt.Errorf("mount large: %w", err)
	}
	data := make([]byte, 4096)
	for i := 0; i < files; i++ {
		d := filepath.Join(dir, "bench", fmt.Sprintf("d%03d", i%200))
		if i < 200 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				mount.UnmountAll(dir, syscall.MNT_DETACH)
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), data[:1024+i%3072], 0o644); err != nil {
			mount.UnmountAll(dir, syscall.MNT_DETACH)
			return err
		}
	}
	if err := mount.UnmountAll(dir, syscall.MNT_DETACH); err != nil {
		return err
	}
	os.Remove(dir)
	var usageActive, usageCommitted []time.Duration
	var u snapshots.Usage
	for i := 0; i < usageN; i++ {
		if err := timed(&usageActive, func() error { u, err = sn.Usage(ctx, big); return err }); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
	}
	activeUsage := u
	bigC := big + "-c"
	if err := sn.Commit(ctx, bigC, big, keep); err != nil {
		return fmt.Errorf("commit large: %w", err)
	}
	for i := 0; i < usageN; i++ {
		if err := timed(&usageCommitted, func() error { u, err = sn.Usage(ctx, bigC); return err }); err != nil {
			sn.Remove(ctx, bigC)
			return fmt.Errorf("usage committed: %w", err)
		}
	}
	// Through containerd, Remove only drops containerd's record: its garbage collector calls the
	// snapshotter's Remove later (scripts/bench-containerd times that with `ctr images rm --sync`).
	if err := sn.Remove(ctx, bigC); err != nil {
		return fmt.Errorf("remove large: %w", err)
	}
	out := map[string]interface{}{
		"prepare_ms":         median(prep),
		"commit_ms":          median(commit),
		"remove_ms":          median(remove),
		"usage_active_ms":    median(usageActive),
		"usage_committed_ms": median(usageCommitted),
		"usage_bytes":        activeUsage.Size,
		"usage_inodes":       activeUsage.Inodes,
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
