// Package ledger is the node agent's on-disk record of every fault it has
// injected. An entry is written before the fault is injected and updated
// after each step, so that an agent restarted after a crash (or a kill -9)
// finds every fault it may have left in place, and recovers or resumes it.
package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// State of a fault in the ledger.
type State string

const (
	// Injecting is written before the injector runs: the fault may or may
	// not be in place.
	Injecting State = "Injecting"
	Injected  State = "Injected"
	Recovered State = "Recovered"
	// Failed injections are recovered too: a half-made fault is undone.
	Failed State = "Failed"
)

// Entry is one fault on this node.
type Entry struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Params are the injector's parameters, opaque to the ledger.
	Params      json.RawMessage `json:"params"`
	StartAt     time.Time       `json:"startAt"`
	Deadline    time.Time       `json:"deadline"`
	State       State           `json:"state"`
	InjectedAt  *time.Time      `json:"injectedAt,omitempty"`
	RecoveredAt *time.Time      `json:"recoveredAt,omitempty"`
	Error       string          `json:"error,omitempty"`
	// Note records what happened outside the normal path, such as a
	// tracer found gone after a restart.
	Note string `json:"note,omitempty"`
	// Effect is the injector's last report of what the fault did
	// (injectors.Reporter), kept after recovery.
	Effect string `json:"effect,omitempty"`
}

// Active reports whether the fault may still be in place.
func (e Entry) Active() bool { return e.State == Injecting || e.State == Injected || e.State == Failed }

// Ledger is a file of entries, safe for concurrent use. Only one process
// may hold a ledger file at a time (an advisory lock enforces it).
type Ledger struct {
	// Corrupt names the damaged file moved aside at Open, if any.
	Corrupt string

	mu      sync.Mutex
	path    string
	lock    *os.File
	entries map[string]Entry
}

// Open loads (or creates) the ledger in dir and locks it.
func Open(dir string) (*Ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "ledger.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("ledger %s is held by another agent: %w", dir, err)
	}
	l := &Ledger{path: filepath.Join(dir, "ledger.json"), lock: lock, entries: map[string]Entry{}}
	b, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		l.Close()
		return nil, err
	default:
		var list []Entry
		if err := json.Unmarshal(b, &list); err != nil {
			// Writes are atomic, so this is damage from outside. Keep the
			// file for a person and start afresh: the agent then sweeps its
			// node for faults no ledger knows of.
			aside := fmt.Sprintf("%s.corrupt-%d", l.path, time.Now().Unix())
			if rerr := os.Rename(l.path, aside); rerr != nil {
				l.Close()
				return nil, fmt.Errorf("ledger %s is corrupt (%v) and cannot be moved aside: %w", l.path, err, rerr)
			}
			l.Corrupt = aside
			break
		}
		for _, e := range list {
			l.entries[e.ID] = e
		}
	}
	return l, nil
}

// Close releases the lock.
func (l *Ledger) Close() error { return l.lock.Close() }

// Put records an entry durably before returning.
func (l *Ledger) Put(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[e.ID] = e
	return l.save()
}

// Get returns the entry with that ID.
func (l *Ledger) Get(id string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[id]
	return e, ok
}

// List returns every entry, ordered by ID.
func (l *Ledger) List() []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Forget drops recovered entries older than before, to bound the file.
func (l *Ledger) Forget(before time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, e := range l.entries {
		if e.State == Recovered && e.RecoveredAt != nil && e.RecoveredAt.Before(before) {
			delete(l.entries, id)
		}
	}
	return l.save()
}

// save writes the file atomically and durably: a crash leaves either the
// old or the new ledger, never half of one.
func (l *Ledger) save() error {
	list := make([]Entry, 0, len(l.entries))
	for _, e := range l.entries {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(l.path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
