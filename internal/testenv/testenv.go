// Package testenv stops tests that cannot run on this machine, the one way
// for every package: a skip on a developer's machine, where a missing
// privilege or kernel feature is expected, but a failure under CI=true,
// where every test must run and a skip would hide that it did not.
package testenv

import (
	"os"
	"testing"
)

// Unavailable stops a test that cannot run here: a failure under CI=true,
// a skip elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot stops the test, as Unavailable does, unless it runs as root;
// why completes "this test needs root to ...".
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "this test needs root to %s; run it as root (make test does)", why)
	}
}
