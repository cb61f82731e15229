// Package sampling chooses which of the matching targets a fault acts on:
// at random, as Chaos Mesh's selector modes do, and replayably from a
// seed. At random, so that a nightly Schedule does not hit the same pods
// every night; replayably, so that a run that found something can be run
// again on the very same targets.
package sampling

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// SeedFrom is the seed of a choice given none: a hash of the experiment's
// UID, within what every JSON reader keeps exact. Each experiment (each run
// of a Schedule) chooses anew, and a pass retried after a lost write
// chooses as the first did: a seed drawn at random would not survive it.
func SeedFrom(uid string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	return int64(h.Sum64() & v1alpha1.MaxSeed)
}

// stream is the second word of the generator's state: the salt's hash,
// so that two choices of one seed (two faults, two rounds) differ.
func stream(salt string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("targets:" + salt))
	return h.Sum64()
}

// Choice is what a mode chooses from n candidates.
type Choice struct {
	Mode  v1alpha1.TargetMode
	Value int32
	Seed  int64
	// Salt tells apart the choices one seed makes: "" for the targets,
	// "rollout NAME" for a Rollout's pods, "round N" for a PodKill's
	// later rounds.
	Salt string
	// Limit caps the count (the safety bounds); 0 is no cap.
	Limit int
}

// Indices are the candidates chosen out of n, in increasing order, and
// how many the mode asked for before the cap: the same choice over the
// same n gives the same indices. The count comes first from the seed's
// stream (random-max-percent's share), then which.
func (c Choice) Indices(n int) (chosen []int, asked int, err error) {
	rng := rand.New(rand.NewPCG(uint64(c.Seed), stream(c.Salt)))
	asked, err = c.count(n, rng)
	if err != nil {
		return nil, 0, err
	}
	k := asked
	if c.Limit > 0 {
		k = min(k, c.Limit)
	}
	in := make([]bool, n)
	for _, i := range rng.Perm(n)[:k] {
		in[i] = true
	}
	chosen = make([]int, 0, k)
	for i, ok := range in {
		if ok {
			chosen = append(chosen, i)
		}
	}
	return chosen, asked, nil
}

// count is how many of n the mode asks for, before the cap; a percent is
// rounded down, but never to none of a set that has some.
func (c Choice) count(n int, rng *rand.Rand) (int, error) {
	if n == 0 {
		return 0, nil
	}
	percent := func() int { return max(n*int(c.Value)/100, 1) }
	switch c.Mode {
	case v1alpha1.TargetModeAll, "":
		return n, nil
	case v1alpha1.TargetModeOne:
		return 1, nil
	case v1alpha1.TargetModeFixed:
		return min(int(c.Value), n), nil
	case v1alpha1.TargetModeFixedPercent:
		return percent(), nil
	case v1alpha1.TargetModeRandomMaxPercent:
		return 1 + rng.IntN(percent()), nil
	}
	return 0, fmt.Errorf("spec.targets.mode: %q is not a mode; want one, fixed, fixed-percent, random-max-percent or all", c.Mode)
}

// Random reports whether the choice may leave some of n candidates out,
// so that the seed matters and is worth recording.
func (c Choice) Random(n int) bool {
	all := c.Mode == "" || c.Mode == v1alpha1.TargetModeAll
	return n > 0 && (!all || (c.Limit > 0 && c.Limit < n))
}
