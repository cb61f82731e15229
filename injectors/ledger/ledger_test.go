package ledger

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEntriesSurviveReopeningDurably(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	if err := l.Put(Entry{ID: "a", Type: "NetworkLoss", Params: []byte(`{"lossPercent":30}`), Deadline: at, State: Injected}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	en, ok := l.Get("a")
	var params bytes.Buffer
	_ = json.Compact(&params, en.Params)
	if !ok || en.State != Injected || !en.Deadline.Equal(at) || params.String() != `{"lossPercent":30}` {
		t.Errorf("reopened entry %+v", en)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.json.tmp")); !os.IsNotExist(err) {
		t.Error("a temporary file was left behind")
	}
}

func TestACorruptLedgerIsMovedAsideNotFatal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ledger.json"), []byte("{half a"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatalf("a corrupt ledger must not stop the agent: %v", err)
	}
	defer l.Close()
	if l.Corrupt == "" || len(l.List()) != 0 {
		t.Fatalf("Corrupt = %q, entries %v; want the file moved aside and an empty ledger", l.Corrupt, l.List())
	}
	if b, err := os.ReadFile(l.Corrupt); err != nil || string(b) != "{half a" {
		t.Errorf("the damaged file was not kept: %v %q", err, b)
	}
}

func TestForgetDropsOnlyOldRecoveredEntries(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old, recent := time.Now().Add(-48*time.Hour), time.Now()
	_ = l.Put(Entry{ID: "old", State: Recovered, RecoveredAt: &old})
	_ = l.Put(Entry{ID: "recent", State: Recovered, RecoveredAt: &recent})
	_ = l.Put(Entry{ID: "active", State: Injected})
	if err := l.Forget(time.Now().Add(-24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Get("old"); ok {
		t.Error("an old recovered entry was kept")
	}
	for _, id := range []string{"recent", "active"} {
		if _, ok := l.Get(id); !ok {
			t.Errorf("%s was dropped", id)
		}
	}
}
