// containerd's snapshotter conformance suite (snapshots/testsuite.SnapshotterSuite), driven over
// containerd's own gRPC proxy client (snapshots/proxy) against a snapshotter process that serves
// containerd.services.snapshots.v1.Snapshots on a unix socket: one fresh process per subtest, with
// the subtest's fresh root.
//
// The snapshotter under test is chosen with SUITE_SNAPSHOTTER:
//
//	strata    spawns `$STRATA containerd-snapshotter --root ROOT --socket SOCK`
//	overlayfs spawns this very test binary serving containerd's built-in overlayfs snapshotter
//	          (snapshots/overlay, through contrib/snapshotservice) on SOCK: the suite and the harness
//	          checked against containerd's own implementation over the same proxy path.
//
// Built offline in GOPATH mode against Debian's golang-github-containerd-containerd-dev (1.6)
// by tests/e2e/containerd/conformance/run. Needs root (it mounts what the snapshotter returns).
package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/pkg/dialer"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/overlay"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

const serveEnv = "SUITE_SERVE_OVERLAYFS"

// TestMain doubles as the overlayfs reference server when started with SUITE_SERVE_OVERLAYFS=ROOT:SOCK.
func TestMain(m *testing.M) {
	if spec := os.Getenv(serveEnv); spec != "" {
		os.Exit(serveOverlayfs(spec))
	}
	os.Exit(m.Run())
}

func serveOverlayfs(spec string) int {
	var root, sock string
	for i := 0; i < len(spec); i++ {
		if spec[i] == ':' {
			root, sock = spec[:i], spec[i+1:]
			break
		}
	}
	sn, err := overlay.NewSnapshotter(root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "overlayfs snapshotter on %s: %v\n", root, err)
		return 1
	}
	// A socket left by a killed predecessor is replaced.
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(os.Stderr, "remove stale %s: %v\n", sock, err)
		return 1
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen on %s: %v\n", sock, err)
		return 1
	}
	srv := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(srv, snapshotservice.FromSnapshotter(sn))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.GracefulStop()
	}()
	if err := srv.Serve(l); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		return 1
	}
	if err := sn.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
		return 1
	}
	return 0
}

// proxyName is the snapshotter name the proxy client sends; a proxy plugin ignores it, as
// containerd's own proxy plugins do.
func proxyName() string {
	if n := os.Getenv("SUITE_SNAPSHOTTER"); n != "" {
		return n
	}
	return "strata"
}

// startSnapshotter starts one snapshotter process on root and returns the proxy client and a
// cleanup that stops the process with SIGTERM and fails unless it exits 0.
func startSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	dir := filepath.Dir(root)
	sock := filepath.Join(dir, "snapshotter.sock")
	logPath := filepath.Join(dir, "snapshotter.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	var cmd *exec.Cmd
	switch proxyName() {
	case "strata":
		bin := os.Getenv("STRATA")
		if bin == "" {
			return nil, nil, errors.New("STRATA (path of the strata binary) is not set")
		}
		cmd = exec.Command(bin, "containerd-snapshotter", "--root", root, "--socket", sock)
	case "overlayfs":
		self, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		cmd = exec.Command(self)
		cmd.Env = append(os.Environ(), serveEnv+"="+root+":"+sock)
	default:
		return nil, nil, fmt.Errorf("unknown SUITE_SNAPSHOTTER %q", proxyName())
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	// The process dies with the test binary even if the cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	}

	// Wait for the socket, failing early if the process exits.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			logf.Close()
			out, _ := os.ReadFile(logPath)
			return nil, nil, fmt.Errorf("snapshotter exited before serving (%v): %s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return nil, nil, fmt.Errorf("snapshotter did not create %s in 20 s", sock)
		}
	}
	if proxyName() == "strata" {
		st, err := os.Stat(sock)
		if err != nil {
			kill()
			return nil, nil, err
		}
		// The suite runs with umask 0: the socket must still be private.
		if mode := st.Mode().Perm(); mode != 0o600 {
			kill()
			return nil, nil, fmt.Errorf("socket %s has mode %o, want 600", sock, mode)
		}
	}

	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dctx, dialer.DialAddress(sock),
		// As containerd dials its proxy plugins.
		grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer.ContextDialer))
	if err != nil {
		kill()
		return nil, nil, fmt.Errorf("dial %s: %w", sock, err)
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), proxyName())

	cleanup := func() error {
		var errs []error
		if err := sn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close proxy: %w", err))
		}
		if err := conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection: %w", err))
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			errs = append(errs, fmt.Errorf("SIGTERM: %w", err))
		}
		select {
		case err := <-exited:
			if err != nil {
				errs = append(errs, fmt.Errorf("snapshotter exited badly after SIGTERM: %w", err))
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			errs = append(errs, errors.New("snapshotter did not stop within 30 s of SIGTERM"))
		}
		logf.Close()
		if len(errs) > 0 {
			out, _ := os.ReadFile(logPath)
			errs = append(errs, fmt.Errorf("snapshotter log:\n%s", out))
			msg := ""
			for _, e := range errs {
				msg += e.Error() + "\n"
			}
			return errors.New(msg)
		}
		return nil
	}
	return sn, cleanup, nil
}

func TestSnapshotterConformance(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("the conformance suite mounts what the snapshotter returns: run it as root")
	}
	testsuite.SnapshotterSuite(t, proxyName(), startSnapshotter)
}
