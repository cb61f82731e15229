package sandbox

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// releasedFile records, in the root shared by every sandbox, when each
// index was last released by down; up takes the free index released
// longest ago. Read and written under the root's lock.
const releasedFile = ".released"

// IsBookkeeping reports whether a name in the sandboxes' root is one of
// its own files (the lock, the released indexes) rather than a sandbox.
func IsBookkeeping(name string) bool { return name == ".lock" || name == releasedFile }

func readReleased(root string) map[int]time.Time {
	out := map[int]time.Time{}
	b, err := os.ReadFile(filepath.Join(root, releasedFile))
	if err != nil {
		return out
	}
	_ = json.Unmarshal(b, &out) // a damaged record only loses the order
	return out
}

func markReleased(root string, index int, at time.Time) error {
	r := readReleased(root)
	r[index] = at
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, releasedFile), b, 0o600)
}

// releasedLongestAgo picks, of the free indexes (in order), the one
// released longest ago; one never released counts as oldest, and a tie
// goes to the lowest. -1 when none is free.
func releasedLongestAgo(free []int, released map[int]time.Time) int {
	index := -1
	for _, i := range free {
		if index < 0 || released[i].Before(released[index]) {
			index = i
		}
	}
	return index
}
