package disklatency

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"faultline.dev/faultline/injectors/disklatency/disklatencytest"
)

// envTracer asks the test binary to be a tracer: inject the fault whose
// parameters (JSON) it holds, print "injected WAKER-PID", and wait to be
// killed.
const envTracer = "FAULTLINE_TEST_DISKLATENCY_TRACER"

func TestMain(m *testing.M) {
	disklatencytest.RunTargetIfAsked()
	if raw := os.Getenv(envTracer); raw != "" {
		os.Exit(runTracer(raw))
	}
	os.Exit(m.Run())
}

func runTracer(raw string) int {
	f, err := New("tracer-helper", []byte(raw))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Inject(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	t := lookup("tracer-helper")
	t.wmu.Lock()
	waker := t.w.pid
	t.wmu.Unlock()
	fmt.Println("injected", waker)
	select {}
}
