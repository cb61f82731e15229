package sampling

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestIndicesCountWhatTheModeAsks(t *testing.T) {
	tests := map[string]struct {
		choice   Choice
		n        int
		min, max int
	}{
		"all is every candidate":             {Choice{Mode: v1alpha1.TargetModeAll}, 10, 10, 10},
		"no mode is all":                     {Choice{}, 7, 7, 7},
		"all is capped by the safety bounds": {Choice{Limit: 3}, 10, 3, 3},
		"one is one":                         {Choice{Mode: v1alpha1.TargetModeOne}, 10, 1, 1},
		"fixed 3 is 3":                       {Choice{Mode: v1alpha1.TargetModeFixed, Value: 3}, 10, 3, 3},
		"fixed asks more than there are and gets them all": {Choice{Mode: v1alpha1.TargetModeFixed, Value: 30}, 10, 10, 10},
		"fixed 5 is capped at 2 by the safety bounds":      {Choice{Mode: v1alpha1.TargetModeFixed, Value: 5, Limit: 2}, 10, 2, 2},
		"fixed-percent 50 of 10 is 5":                      {Choice{Mode: v1alpha1.TargetModeFixedPercent, Value: 50}, 10, 5, 5},
		"fixed-percent rounds down":                        {Choice{Mode: v1alpha1.TargetModeFixedPercent, Value: 50}, 9, 4, 4},
		"fixed-percent never rounds down to none":          {Choice{Mode: v1alpha1.TargetModeFixedPercent, Value: 10}, 3, 1, 1},
		"random-max-percent is from one up to the percent": {Choice{Mode: v1alpha1.TargetModeRandomMaxPercent, Value: 40}, 10, 1, 4},
		"nothing to choose from chooses nothing":           {Choice{Mode: v1alpha1.TargetModeOne}, 0, 0, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			seen := map[int]bool{}
			for seed := range int64(200) {
				tc.choice.Seed = seed
				got, _, err := tc.choice.Indices(tc.n)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) < tc.min || len(got) > tc.max {
					t.Fatalf("seed %d: %d chosen %v, want %d to %d", seed, len(got), got, tc.min, tc.max)
				}
				if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
					t.Fatalf("seed %d: %v, want distinct indices in order", seed, got)
				}
				for _, i := range got {
					if i < 0 || i >= tc.n {
						t.Fatalf("seed %d: index %d out of %d", seed, i, tc.n)
					}
				}
				seen[len(got)] = true
			}
			// random-max-percent's share itself varies from seed to seed.
			if tc.min < tc.max && len(seen) != tc.max-tc.min+1 {
				t.Errorf("counts seen %v over 200 seeds, want every one from %d to %d", seen, tc.min, tc.max)
			}
		})
	}
}

func TestTheSameSeedOverTheSameCandidatesChoosesTheSameOnes(t *testing.T) {
	for _, c := range []Choice{
		{Mode: v1alpha1.TargetModeFixed, Value: 3, Seed: 42},
		{Mode: v1alpha1.TargetModeRandomMaxPercent, Value: 60, Seed: v1alpha1.MaxSeed},
		{Limit: 4, Seed: 7},
	} {
		first, _, err := c.Indices(12)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if again, _, _ := c.Indices(12); !slices.Equal(again, first) {
				t.Fatalf("%+v: %v, then %v", c, first, again)
			}
		}
	}
}

func TestWithoutASeedEveryCandidateIsChosenSometimes(t *testing.T) {
	// As a nightly Schedule runs: a new experiment, so a new UID and seed,
	// each time. 20 runs of one of 10 miss a given candidate with odds
	// 0.9^20 (12 %); 200 runs make a miss of any of them about 1 in 10^8.
	chosen := make([]int, 10)
	seeds := map[int64]bool{}
	for i := range 200 {
		c := Choice{Mode: v1alpha1.TargetModeOne, Seed: SeedFrom(fmt.Sprintf("6f1c2a4e-0d3b-4c55-9a7e-%012d", i))}
		if c.Seed < 0 || c.Seed > v1alpha1.MaxSeed {
			t.Fatalf("seed %d out of [0, 2^53)", c.Seed)
		}
		seeds[c.Seed] = true
		got, _, err := c.Indices(10)
		if err != nil {
			t.Fatal(err)
		}
		chosen[got[0]]++
	}
	for i, n := range chosen {
		if n == 0 {
			t.Errorf("candidate %d never chosen in 200 runs: %v", i, chosen)
		}
	}
	if len(seeds) != 200 {
		t.Errorf("%d distinct seeds from 200 UIDs", len(seeds))
	}
	uid := "6f1c2a4e-0d3b-4c55-9a7e-1b2c3d4e5f60"
	if first, again := SeedFrom(uid), SeedFrom(strings.Clone(uid)); first != again {
		t.Errorf("one UID, two seeds: %d, then %d", first, again)
	}
}

func TestOneSeedChoosesApartForEachSalt(t *testing.T) {
	// Round 2 of seed s must not be round 1 of seed s+1, nor two faults'
	// choices the same: over 50 seeds, salts that chose alike every time
	// would show.
	same, sameShifted := 0, 0
	for seed := range int64(50) {
		a, _, _ := Choice{Mode: v1alpha1.TargetModeOne, Seed: seed, Salt: "kill#2"}.Indices(20)
		b, _, _ := Choice{Mode: v1alpha1.TargetModeOne, Seed: seed, Salt: "other#2"}.Indices(20)
		c, _, _ := Choice{Mode: v1alpha1.TargetModeOne, Seed: seed + 1, Salt: "kill#1"}.Indices(20)
		if a[0] == b[0] {
			same++
		}
		if a[0] == c[0] {
			sameShifted++
		}
	}
	if same > 10 || sameShifted > 10 {
		t.Errorf("of 50 seeds, %d chose alike for two faults and %d alike for round 2 and the next seed's round 1; want about 2.5", same, sameShifted)
	}
}

func TestAModeThatIsNotOneIsRefusedNamingTheField(t *testing.T) {
	_, _, err := Choice{Mode: "half"}.Indices(4)
	if err == nil || err.Error() != `spec.targets.mode: "half" is not a mode; want one, fixed, fixed-percent, random-max-percent or all` {
		t.Fatalf("err = %v", err)
	}
}

func TestRandomSaysWhenTheSeedMatters(t *testing.T) {
	tests := map[string]struct {
		c    Choice
		n    int
		want bool
	}{
		"all of them, uncapped":       {Choice{}, 5, false},
		"all, capped below the count": {Choice{Limit: 3}, 5, true},
		"all, capped above the count": {Choice{Limit: 9}, 5, false},
		"one of several":              {Choice{Mode: v1alpha1.TargetModeOne}, 5, true},
		"a mode over no candidates":   {Choice{Mode: v1alpha1.TargetModeOne}, 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.c.Random(tc.n); got != tc.want {
				t.Errorf("Random(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func TestAskedIsTheModesCountBeforeTheCap(t *testing.T) {
	got, asked, err := Choice{Mode: v1alpha1.TargetModeFixed, Value: 5, Limit: 2, Seed: 1}.Indices(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || asked != 5 {
		t.Errorf("%d chosen of %d asked, want 2 of 5", len(got), asked)
	}
}
