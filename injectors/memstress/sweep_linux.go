package memstress

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Sweep recovers, as Recover would, every fault whose state is under
// stateDir and that active does not claim: it kills its stressor (by pid
// and start time) and removes its cgroup and state. A restarted agent that
// lost its ledger calls it with the faults it knows. It returns the IDs it
// swept.
func Sweep(ctx context.Context, stateDir string, active func(id string) bool) ([]string, error) {
	opMu.Lock()
	defer opMu.Unlock()
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), stateDirName(""))
		if !ok || !e.IsDir() || checkID(id) != nil || active(id) {
			continue
		}
		if err := recoverDir(ctx, id, filepath.Join(stateDir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
			continue
		}
		swept = append(swept, id)
	}
	return swept, errors.Join(errs...)
}
