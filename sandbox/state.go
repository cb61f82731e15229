package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// State is what a sandbox has made, written to disk before and after each
// step so that `down` can undo a sandbox whose `up` was killed halfway.
type State struct {
	mu   sync.Mutex
	path string

	Name       string    `json:"name"`
	Index      int       `json:"index"`
	Config     Config    `json:"config"`
	Started    time.Time `json:"started"`
	Ready      bool      `json:"ready"`
	Kubeconfig string    `json:"kubeconfig"`
	Server     string    `json:"server"`
	// PrometheusURL is empty unless --prometheus was given.
	PrometheusURL string `json:"prometheusURL,omitempty"`
	// IngressURL is empty unless --ingress was given.
	IngressURL string               `json:"ingressURL,omitempty"`
	Components map[string]Component `json:"components"`
	Nodes      []NodeInfo           `json:"nodes"`
	// Netns, Links and Cgroups are recorded before they are created.
	Netns   []string `json:"netns"`
	Links   []string `json:"links"`
	Cgroups []string `json:"cgroups"`
}

// Component is one process the sandbox started.
type Component struct {
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // process start time, so a reused PID is never killed
	Ports []int  `json:"ports,omitempty"`
	Netns string `json:"netns,omitempty"`
	Log   string `json:"log"`
	// Bin and Args restart the component (see Restart).
	Bin  string   `json:"bin,omitempty"`
	Args []string `json:"args,omitempty"`
}

// NodeInfo describes a node of the sandbox.
type NodeInfo struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // kwok, isolated or real
	Addr  string `json:"addr,omitempty"`
	Netns string `json:"netns,omitempty"`
}

// Node kinds.
const (
	NodeKwok     = "kwok"
	NodeIsolated = "isolated"
	NodeReal     = "real"
)

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadState reads the state of the sandbox in dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	s := &State{path: statePath(dir)}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("sandbox state %s is unreadable: %w", s.path, err)
	}
	return s, nil
}

// save writes the state atomically; the caller holds mu.
func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// update changes the state under its lock and persists it at once.
func (s *State) update(f func(*State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
	if err := s.save(); err != nil {
		return err
	}
	dieAfterSave()
	return nil
}

// dieAfterSave lets tests kill `up` at an exact step: with
// FAULTLINE_SANDBOX_DIE_AFTER_SAVES=N, the process SIGKILLs itself right
// after the Nth write of its state, just as a kill -9 would land there.
var saves int

func dieAfterSave() {
	n, err := strconv.Atoi(os.Getenv("FAULTLINE_SANDBOX_DIE_AFTER_SAVES"))
	if err != nil {
		return
	}
	if saves++; saves == n {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func (s *State) addComponent(c Component) error {
	return s.update(func(s *State) { s.Components[c.Name] = c })
}

func appendOnce(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func (s *State) recordNetns(n string) error {
	return s.update(func(s *State) { s.Netns = appendOnce(s.Netns, n) })
}

func (s *State) recordLink(l string) error {
	return s.update(func(s *State) { s.Links = appendOnce(s.Links, l) })
}

func (s *State) recordCgroup(c string) error {
	return s.update(func(s *State) { s.Cgroups = appendOnce(s.Cgroups, c) })
}

// ErrNotFound is returned when no sandbox of that name exists.
var ErrNotFound = errors.New("no such sandbox")
