//go:build !linux

package memstress

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Cgroups, PR_SET_PDEATHSIG and pidfds are Linux's: elsewhere a fault is
// built and validated, but its injection fails.
var errUnsupported = errors.New("memory stress faults need Linux")

// StressorMain fails: there is no stressor but on Linux.
func StressorMain([]string) int {
	fmt.Fprintln(os.Stderr, StressorCommand+":", errUnsupported)
	return 2
}

// Inject fails: memory stress needs Linux.
func (f *Fault) Inject(context.Context) error { return errUnsupported }

// Recover has nothing to remove.
func (f *Fault) Recover(context.Context) error { return nil }

// Verify reports no fault in place.
func (f *Fault) Verify(context.Context) (bool, error) { return false, nil }

// Status reports no stressor.
func (f *Fault) Status() (Status, error) {
	return Status{Mode: f.Params.Mode, TargetBytes: f.Params.TargetBytes}, nil
}

// Sweep has nothing to sweep.
func Sweep(context.Context, string, func(string) bool) ([]string, error) { return nil, nil }
