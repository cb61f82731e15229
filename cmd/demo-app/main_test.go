package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildDemoApp compiles this command once for the test binary.
func buildDemoApp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demo-app")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func status(url string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func startApp(t *testing.T, bin string, args ...string) (*exec.Cmd, string, string) {
	t.Helper()
	addr := freeAddr(t)
	sigLog := filepath.Join(t.TempDir(), "signals")
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--signal-log", sigLog}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for status(base+"/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("demo-app did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, base, sigLog
}

func TestShutdownModes(t *testing.T) {
	bin := buildDemoApp(t)
	tests := map[string]struct {
		args []string
		// after SIGTERM, during the drain
		wantRoot, wantReady int
	}{
		"a fragile app stops answering at once": {args: []string{"--shutdown", "fragile"}, wantRoot: 0, wantReady: 0},
		"a graceful app keeps serving but reports not ready while it drains": {
			args: []string{"--shutdown", "graceful", "--drain", "2s"}, wantRoot: http.StatusOK, wantReady: http.StatusServiceUnavailable,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd, base, sigLog := startApp(t, bin, tc.args...)
			if got := status(base + "/readyz"); got != http.StatusOK {
				t.Fatalf("/readyz before SIGTERM = %d, want 200", got)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if got := status(base + "/"); got != tc.wantRoot {
				t.Errorf("/ during the drain = %d, want %d", got, tc.wantRoot)
			}
			if got := status(base + "/readyz"); got != tc.wantReady {
				t.Errorf("/readyz during the drain = %d, want %d", got, tc.wantReady)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit: %v, want a clean exit", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("demo-app did not exit after SIGTERM")
			}
			b, _ := os.ReadFile(sigLog)
			if want := fmt.Sprintf("terminated pid=%d", cmd.Process.Pid); !strings.Contains(string(b), want) {
				t.Errorf("signal log = %q, want %q", b, want)
			}
		})
	}
}

func TestMetricsCountRequestsByStatusCode(t *testing.T) {
	_, base, _ := startApp(t, buildDemoApp(t))
	for range 3 {
		status(base + "/status/503")
	}
	status(base + "/")
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`demo_app_requests_total{code="503",path="/status"} 3`, `demo_app_requests_total{code="200",path="/"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestBadFlagsAreRefusedWithTheFlagName(t *testing.T) {
	bin := buildDemoApp(t)
	for args, want := range map[string]string{"--shutdown=abrupt": "--shutdown", "--drain=soon": "--drain"} {
		out, err := exec.Command(bin, args).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: err %v, output %q; want a failure naming %s", args, err, out, want)
		}
	}
}

func TestLeaderElectionTimingsAreCheckedNamingTheFlag(t *testing.T) {
	for name, tc := range map[string]struct {
		c    leaderConfig
		want string
	}{
		"client-go's defaults are accepted":    {leaderConfig{"l", 15 * time.Second, 10 * time.Second, 2 * time.Second}, ""},
		"a fast-failover tuning is accepted":   {leaderConfig{"l", 2 * time.Second, time.Second, 200 * time.Millisecond}, ""},
		"a lease no longer than the deadline":  {leaderConfig{"l", 10 * time.Second, 10 * time.Second, 2 * time.Second}, "--lease-duration 10s: must be more than --renew-deadline 10s"},
		"a deadline within one jittered retry": {leaderConfig{"l", 15 * time.Second, 2 * time.Second, 2 * time.Second}, "--renew-deadline 2s: must be more than 1.2 times --retry-period 2s"},
		"a retry period of zero":               {leaderConfig{"l", 15 * time.Second, 10 * time.Second, 0}, "--retry-period 0s: must be more than 0"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.c.validate()
			if (err == nil) != (tc.want == "") || err != nil && err.Error() != tc.want {
				t.Errorf("validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
