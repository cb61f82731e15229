package memstress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"faultline.dev/faultline/injectors"
)

// The test binary plays other roles, chosen by its arguments or environment:
const (
	// envInjector: inject the fault {"id","params"} it holds, print
	// "injected PID" (the stressor's), and wait to be killed: an agent.
	envInjector = "FAULTLINE_TEST_MEMSTRESS_INJECTOR"
	// envHog: join the cgroup {"procs"} holds the cgroup.procs of, set
	// oom_score_adj {"oomScoreAdj"}, make {"bytes"} resident, print
	// "ready", and wait for stdin to close: a container's process.
	envHog = "FAULTLINE_TEST_MEMSTRESS_HOG"
)

func TestMain(m *testing.M) {
	// The stressor first: it is started with the environment of its agent,
	// which may be a helper's.
	if len(os.Args) > 1 && os.Args[1] == StressorCommand {
		os.Exit(StressorMain(os.Args[2:]))
	}
	if raw := os.Getenv(envInjector); raw != "" {
		os.Exit(runInjector(raw))
	}
	if raw := os.Getenv(envHog); raw != "" {
		os.Exit(runHog(raw))
	}
	os.Exit(m.Run())
}

type injectorConfig struct {
	ID       string    `json:"id"`
	Params   Params    `json:"params"`
	Deadline time.Time `json:"deadline,omitzero"`
}

func runInjector(raw string) int {
	var c injectorConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	f, err := NewFault(c.ID, c.Params)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var fault injectors.Fault = f
	if !c.Deadline.IsZero() {
		fault = f.Until(c.Deadline)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fault.Inject(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("injected", lookup(c.ID).pid)
	select {}
}

type hogConfig struct {
	Procs       string `json:"procs"`
	Bytes       int    `json:"bytes"`
	OOMScoreAdj int    `json:"oomScoreAdj"`
}

func runHog(raw string) int {
	var c hogConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := os.WriteFile(c.Procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(c.OOMScoreAdj)), 0); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if c.Bytes > 0 {
		b, err := unix.Mmap(-1, 0, c.Bytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 1
		}
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}
