package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/continuity/fs/fstest"
)

// TestRename covers what the suite's Rename subtest would: containerd 1.6 skips that subtest on every
// kernel ("still fails on some kernels with overlay"), so the same layering — a directory renamed, a
// file replaced by renaming another over it, a file renamed — is checked here on its own: each layer
// is written through the mounts of an active snapshot, committed, and a view of it must equal a
// plain directory that received the same changes.
func TestRename(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root")
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "conformance")
	sn, stop, err := startSnapshotter(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	layers := []fstest.Applier{
		fstest.Apply(
			fstest.CreateDir("/dir1", 0o700),
			fstest.CreateDir("/somefiles", 0o700),
			fstest.CreateFile("/somefiles/f1", []byte("was here first!"), 0o644),
			fstest.CreateFile("/somefiles/f2", []byte("nothing interesting"), 0o644),
		),
		fstest.Apply(
			renameOrMove("/dir1", "/dir2"),
			fstest.CreateFile("/somefiles/f1-overwrite", []byte("new content 1"), 0o644),
			fstest.Rename("/somefiles/f1-overwrite", "/somefiles/f1"),
			fstest.Rename("/somefiles/f2", "/somefiles/f3"),
		),
	}
	flat := filepath.Join(tmp, "flat")
	if err := os.Mkdir(flat, 0o755); err != nil {
		t.Fatal(err)
	}
	parent := ""
	for i, layer := range layers {
		key, name := fmt.Sprintf("rename-%d-active", i), fmt.Sprintf("rename-%d", i)
		mounts, err := sn.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatalf("layer %d: prepare: %v", i, err)
		}
		if err := withMounted(mounts, filepath.Join(tmp, key), layer.Apply); err != nil {
			t.Fatalf("layer %d: apply: %v", i, err)
		}
		if err := sn.Commit(ctx, name, key); err != nil {
			t.Fatalf("layer %d: commit: %v", i, err)
		}
		if err := layer.Apply(flat); err != nil {
			t.Fatal(err)
		}
		if err := checkView(ctx, sn, name, filepath.Join(tmp, name+"-view"), flat); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		parent = name
	}
}

// renameOrMove renames like mv(1): overlayfs answers EXDEV for renaming a directory that comes from
// a lower layer (without redirect_dir), and tools then copy and delete. The suite's own check uses a
// bare rename(2) there, which is why containerd skips it.
func renameOrMove(from, to string) fstest.Applier {
	return applyFunc(func(root string) error {
		src, dst := filepath.Join(root, from), filepath.Join(root, to)
		err := os.Rename(src, dst)
		if !errors.Is(err, syscall.EXDEV) {
			return err
		}
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
		}
		return os.RemoveAll(src)
	})
}

type applyFunc func(string) error

func (f applyFunc) Apply(root string) error { return f(root) }

func withMounted(mounts []mount.Mount, dir string, fn func(string) error) (err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := mount.All(mounts, dir); err != nil {
		return fmt.Errorf("mount %v: %w", mounts, err)
	}
	defer func() {
		if uerr := mount.UnmountAll(dir, syscall.MNT_DETACH); uerr != nil && err == nil {
			err = uerr
		}
	}()
	return fn(dir)
}

func checkView(ctx context.Context, sn snapshots.Snapshotter, parent, dir, want string) error {
	key := filepath.Base(dir)
	mounts, err := sn.View(ctx, key, parent)
	if err != nil {
		return fmt.Errorf("view of %s: %w", parent, err)
	}
	err = withMounted(mounts, dir, func(d string) error { return fstest.CheckDirectoryEqual(want, d) })
	if rerr := sn.Remove(ctx, key); rerr != nil && err == nil {
		err = fmt.Errorf("remove view %s: %w", key, rerr)
	}
	return err
}
