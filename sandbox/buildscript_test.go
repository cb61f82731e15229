package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeGo is a go command that takes its time and writes the -o binary.
const fakeGo = `#!/bin/sh
out=""
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
sleep 3
case "$out" in */) out="${out}chaos-controller-manager";; esac
printf '#!/bin/sh\necho "etcd Version: 3.6.7"\n' > "$out" && chmod +x "$out"
`

// runBuildScript runs build.sh for component with the fake go, a
// heartbeat of a second, and returns what it said.
func runBuildScript(t *testing.T, cache, component string) string {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tools/build.sh", component)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAULTLINE_TOOLS_DIR="+cache, "FAULTLINE_TOOLS_HEARTBEAT=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh %s: %v\n%s", component, err, out)
	}
	return string(out)
}

func TestTheToolsBuildSaysWhatItBuildsForHowLongAndWhatTheLastBuildTook(t *testing.T) {
	cache := t.TempDir()
	first := runBuildScript(t, cache, "etcd")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`building etcd v3\.6\.7: about 2m00s on 2 cores \(first build here\)`),
		regexp.MustCompile(`building etcd v3\.6\.7: 0m0[12]s so far`),
		regexp.MustCompile(`built etcd v3\.6\.7 in 0m0[345]s`),
	} {
		if !want.MatchString(first) {
			t.Errorf("the first build does not say %q:\n%s", want, first)
		}
	}
	if again := runBuildScript(t, cache, "etcd"); strings.Contains(again, "building") {
		t.Errorf("a built tool is built again:\n%s", again)
	}
	dir := filepath.Join(cache, toolsSubdir())
	if err := os.Remove(filepath.Join(dir, ".etcd.ok")); err != nil {
		t.Fatal(err)
	}
	if second := runBuildScript(t, cache, "etcd"); !regexp.MustCompile(`building etcd v3\.6\.7: the last build here took 0m0[345]s`).MatchString(second) {
		t.Errorf("a rebuild does not give the last build's time as its estimate:\n%s", second)
	}
	// A binary built from another go.sum (its module moved since) is
	// built again.
	if err := os.WriteFile(filepath.Join(dir, ".etcd.ok"), []byte("a hash of an older go.sum\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if third := runBuildScript(t, cache, "etcd"); !strings.Contains(third, "building etcd") {
		t.Errorf("a tool built from an older module is not built again:\n%s", third)
	}
}

func TestTheToolsBuildRefusesAComponentItDoesNotKnow(t *testing.T) {
	cmd := exec.Command("tools/build.sh", "kube-everything")
	cmd.Env = append(os.Environ(), "FAULTLINE_TOOLS_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no component kube-everything (kubernetes, etcd, kwok, chaos-mesh)") {
		t.Errorf("build.sh kube-everything: %v\n%s", err, out)
	}
}

// up builds what its sandbox runs and the tools directory lacks, and no
// more: a sandbox without kwok nodes (the demo's) builds no kwok.
func TestUpBuildsOnlyTheToolsItsSandboxRuns(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAULTLINE_TOOLS_DIR", t.TempDir())
	t.Setenv("FAULTLINE_TOOLS_HEARTBEAT", "1")
	c := DefaultConfig()
	c.SharedKwokNodes, c.IsolatedKwokNodes = 0, 0
	var out strings.Builder
	if err := ensureTools(t.Context(), c, NewProgress(&out)); err != nil {
		t.Fatalf("ensureTools: %v\n%s", err, out.String())
	}
	said := out.String()
	if !strings.Contains(said, "kubernetes etcd") || strings.Contains(said, "building kwok") || !strings.Contains(said, "built etcd") || !strings.Contains(said, "built kube ") {
		t.Errorf("a sandbox without kwok nodes built:\n%s", said)
	}
	for _, b := range ToolsFor(c) {
		if _, err := os.Stat(filepath.Join(ToolsDir(), "."+b+".ok")); err != nil {
			t.Errorf("%s is not built: %v", b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(ToolsDir(), ".kwok.ok")); err == nil {
		t.Error("kwok was built for a sandbox without kwok nodes")
	}
	out.Reset()
	if err := ensureTools(t.Context(), c, NewProgress(&out)); err != nil || out.Len() > 0 {
		t.Errorf("a second up builds again: %v\n%s", err, out.String())
	}
}
