// Command trafficbench measures the traffic prober against a local HTTP
// server, with wrk and hey against the same server for scale.
//
// The server is a child process (trafficbench -serve) with GOMAXPROCS 1,
// so that it cannot take the prober's processor and the figures are about
// the clients. The prober runs in this process with GOMAXPROCS 1: one
// core's worth of Go code. wrk runs with one thread (-t1 -c64) and hey
// with GOMAXPROCS 1 (-c 64 -cpus 1), one after the other. wrk and hey are
// closed-loop, as fast as the server answers; the prober is open-loop at a
// fixed rate, so its figures are the rate it kept and how precisely: the
// send lag, when a request left minus when it was due.
//
// Nothing is pinned unless -client-cpu and -server-cpu say so: pinning
// every thread of the prober to one CPU made the wake-ups of the Go
// runtime's sysmon thread preempt the prober, about once a request.
//
// On a shared machine the lag's tail follows the neighbours, so each run
// also prints how often the prober was preempted (involuntary context
// switches) and the CPU pressure: the share of the time some task on the
// machine waited for a CPU (/proc/pressure/cpu).
//
//	go run ./analyzers/traffic/cmd/trafficbench              # 5,000 req/s for 10 s, then wrk and hey
//	go run ./analyzers/traffic/cmd/trafficbench -find-max    # then 5k, 10k, 15k, 20k req/s: the highest kept
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"faultline.dev/faultline/analyzers/traffic"
)

func main() {
	serve := flag.String("serve", "", "run the test server on this address (the parent starts it so)")
	rate := flag.Float64("rate", 5000, "prober rate, requests per second")
	duration := flag.Duration("duration", 10*time.Second, "length of each run (prober, wrk, hey)")
	clientCPU := flag.Int("client-cpu", -1, "CPU to pin the prober, wrk and hey to; -1 leaves them unpinned")
	serverCPU := flag.Int("server-cpu", -1, "CPU to pin the server to; -1 leaves it unpinned")
	findMax := flag.Bool("find-max", false, "also step the rate up by -step to find the highest rate kept")
	step := flag.Float64("step", 5000, "rate step for -find-max, requests per second")
	stepDuration := flag.Duration("step-duration", 5*time.Second, "length of each -find-max run")
	skipTools := flag.Bool("skip-tools", false, "do not run wrk and hey")
	cpuProfile := flag.String("cpuprofile", "", "write the prober's CPU profile to this file")
	nice := flag.Int("nice", 0, "run the prober, the server, wrk and hey at this nice value (below 0 needs root): less noise from the neighbours")
	flag.Parse()

	runtime.GOMAXPROCS(1)
	if *nice != 0 {
		if err := renice(*nice); err != nil {
			fmt.Fprintln(os.Stderr, "trafficbench: nice:", err)
			os.Exit(1)
		}
	}
	if *serve != "" {
		pin(*serverCPU)
		if err := runServer(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "trafficbench -serve:", err)
			os.Exit(1)
		}
		return
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "trafficbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*rate, *duration, *clientCPU, *serverCPU, *findMax, *step, *stepDuration, *skipTools); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "trafficbench:", err)
		os.Exit(1)
	}
}

func runServer(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr()) // the parent reads where to send
	body := []byte("ok\n")
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
}

// pin binds every thread of this process to cpu.
func pin(cpu int) {
	if cpu < 0 || cpu >= runtime.NumCPU() {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	_ = eachThread(func(tid int) error { return unix.SchedSetaffinity(tid, &set) })
}

// renice sets the nice value of every thread of this process.
func renice(n int) error {
	return eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, n) })
}

// eachThread applies f to every thread: on Linux, CPU affinity and nice
// values are a thread's, and threads (and child processes) made later
// inherit them from the thread that makes them.
func eachThread(f func(tid int) error) error {
	tasks, err := filepath.Glob("/proc/self/task/*")
	for _, task := range tasks {
		if tid, perr := strconv.Atoi(filepath.Base(task)); perr == nil {
			err = errors.Join(err, f(tid))
		}
	}
	return err
}

// onCPU prefixes a command with taskset when there is a CPU to pin to.
func onCPU(cpu int, name string, args ...string) *exec.Cmd {
	if path, err := exec.LookPath("taskset"); err == nil && cpu >= 0 && cpu < runtime.NumCPU() {
		return exec.Command(path, append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
	}
	return exec.Command(name, args...)
}

func run(rate float64, duration time.Duration, clientCPU, serverCPU int, findMax bool, step float64, stepDuration time.Duration, skipTools bool) error {
	pin(clientCPU)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	server := onCPU(serverCPU, self, "-serve", "127.0.0.1:0", "-server-cpu", strconv.Itoa(serverCPU))
	server.Stderr = os.Stderr
	out, err := server.StdoutPipe()
	if err != nil {
		return err
	}
	if err := server.Start(); err != nil {
		return err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the server's address: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	where := func(cpu int) string {
		if cpu < 0 || cpu >= runtime.NumCPU() {
			return "unpinned"
		}
		return "on CPU " + strconv.Itoa(cpu)
	}
	fmt.Printf("server %s: child process, GOMAXPROCS 1, %s; clients %s; %d CPUs\n\n", url, where(serverCPU), where(clientCPU), runtime.NumCPU())

	c, err := control(rate, duration)
	if err != nil {
		return err
	}
	r, err := probe(url, rate, duration)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "client\ttarget req/s\treq/s\terrors\tlag p50\tlag p99\tlag max\tCPU (cores)\tpreempted\tCPU pressure\t")
	fmt.Fprintf(tw, "control: pacing alone\t%.0f\t\t\t%s\t%s\t%s\t%.2f\t%d\t%.0f%%\t\n", rate, c.lag.P50, c.lag.P99, c.lag.Max, c.cpu, c.preempted, 100*c.pressure)
	fmt.Fprintf(tw, "prober (GOMAXPROCS 1)\t%.0f\t%.1f\t%d\t%s\t%s\t%s\t%.2f\t%d\t%.0f%%\t\n", rate, r.achieved, r.errors, r.lag.P50, r.lag.P99, r.lag.Max, r.cpu, r.preempted, 100*r.pressure)
	var wrk, hey float64
	if !skipTools {
		secs := strconv.Itoa(int(duration.Seconds())) + "s"
		if wrk, err = tool(onCPU(clientCPU, "wrk", "-t1", "-c64", "-d"+secs, url)); err != nil {
			return fmt.Errorf("wrk: %w", err)
		}
		fmt.Fprintf(tw, "wrk -t1 -c64 -d%s\tclosed loop\t%.1f\t\t\t\t\t\t\t\t\n", secs, wrk)
		if hey, err = tool(onCPU(clientCPU, "hey", "-z", secs, "-c", "64", "-cpus", "1", url)); err != nil {
			return fmt.Errorf("hey: %w", err)
		}
		fmt.Fprintf(tw, "hey -z %s -c 64 -cpus 1\tclosed loop\t%.1f\t\t\t\t\t\t\t\t\n", secs, hey)
	}
	tw.Flush()
	if !skipTools {
		fmt.Printf("\nprober/wrk %.3f   prober/hey %.3f   (prober at its target rate against their maximum)\n", r.achieved/wrk, r.achieved/hey)
	}
	kept := r.achieved >= 0.99*rate && r.lag.P99 < time.Millisecond
	fmt.Printf("goal at %.0f req/s (achieved >= 99%% of target, send lag p99 < 1ms): %s\n", rate, verdict(kept))

	if !findMax {
		return nil
	}
	fmt.Printf("\nfind-max: %s per rate, each after a control run (pacing alone); kept = achieved >= 99%% of target and send lag p99 < 1ms\n", stepDuration)
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target req/s\treq/s\terrors\tlag p50\tlag p99\tlag max\tCPU (cores)\tpreempted\tCPU pressure\tkept\t")
	best := 0.0
	for target := step; target <= traffic.MaxRate; target += step {
		c, err := control(target, stepDuration)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "(control)\t\t\t%s\t%s\t%s\t%.2f\t%d\t%.0f%%\t\t\n", c.lag.P50, c.lag.P99, c.lag.Max, c.cpu, c.preempted, 100*c.pressure)
		r, err := probe(url, target, stepDuration)
		if err != nil {
			return err
		}
		ok := r.achieved >= 0.99*target && r.lag.P99 < time.Millisecond
		if ok {
			best = target
		}
		fmt.Fprintf(tw, "%.0f\t%.1f\t%d\t%s\t%s\t%s\t%.2f\t%d\t%.0f%%\t%s\t\n", target, r.achieved, r.errors, r.lag.P50, r.lag.P99, r.lag.Max, r.cpu, r.preempted, 100*r.pressure, verdict(ok))
	}
	tw.Flush()
	fmt.Printf("highest rate kept: %.0f req/s", best)
	if !skipTools && best > 0 {
		fmt.Printf(" (%.3f of wrk, %.3f of hey)", best/wrk, best/hey)
	}
	fmt.Println()
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

type result struct {
	achieved float64
	errors   int64
	lag      traffic.Lag
	cpu      float64 // cores used by this process while probing
	// Noise from the rest of the machine: how often this process was
	// preempted (involuntary context switches), and the share of the time
	// some task on the machine waited for a CPU (/proc/pressure/cpu).
	preempted int64
	pressure  float64
}

func probe(url string, rate float64, d time.Duration) (result, error) {
	p, err := traffic.New(traffic.Config{URL: url, Rate: rate}, nil)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	runtime.GC()
	cpu0, stall0, start := usage(), stalled(), time.Now()
	err = p.Run(ctx)
	cpu1, stall1, wall := usage(), stalled(), time.Since(start)
	if err != nil {
		return result{}, err
	}
	m := p.Measure(time.Now())
	return result{
		achieved:  m["achievedRate"].(float64),
		errors:    m["errors"].(int64),
		lag:       p.SendLag(),
		cpu:       (cpu1.cpu - cpu0.cpu).Seconds() / wall.Seconds(),
		preempted: cpu1.nivcsw - cpu0.nivcsw,
		pressure:  (stall1 - stall0).Seconds() / wall.Seconds(),
	}, nil
}

// control paces as the prober does (on a timerfd, from start + i/rate)
// without sending anything: the send lag this machine allows at the moment.
func control(rate float64, d time.Duration) (result, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return result{}, err
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	defer f.Close()
	lags := hdrhistogram.New(1, 120_000_000, 3)
	var buf [8]byte
	cpu0, stall0, start := usage(), stalled(), time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if due.Sub(start) >= d {
			break
		}
		if wait := time.Until(due); wait > 0 {
			spec := unix.ItimerSpec{Value: unix.NsecToTimespec(wait.Nanoseconds())}
			if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
				return result{}, err
			}
			if _, err := f.Read(buf[:]); err != nil {
				return result{}, err
			}
		}
		_ = lags.RecordValue(max(time.Since(due).Microseconds(), 1))
	}
	cpu1, stall1, wall := usage(), stalled(), time.Since(start)
	q := lags.ValueAtPercentiles([]float64{50, 99})
	return result{
		lag:       traffic.Lag{Count: lags.TotalCount(), P50: time.Duration(q[50]) * time.Microsecond, P99: time.Duration(q[99]) * time.Microsecond, Max: time.Duration(lags.Max()) * time.Microsecond},
		cpu:       (cpu1.cpu - cpu0.cpu).Seconds() / wall.Seconds(),
		preempted: cpu1.nivcsw - cpu0.nivcsw,
		pressure:  (stall1 - stall0).Seconds() / wall.Seconds(),
	}, nil
}

type rusage struct {
	cpu    time.Duration
	nivcsw int64
}

func usage() rusage {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return rusage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nivcsw: ru.Nivcsw}
}

var stallTotal = regexp.MustCompile(`some .*total=([0-9]+)`)

// stalled is how long some task on the machine has waited for a CPU.
func stalled() time.Duration {
	b, _ := os.ReadFile("/proc/pressure/cpu")
	m := stallTotal.FindSubmatch(b)
	if m == nil {
		return 0
	}
	us, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return time.Duration(us) * time.Microsecond
}

var requestsPerSec = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// tool runs wrk or hey and reads the requests per second it reports.
func tool(cmd *exec.Cmd) (float64, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, io.Discard
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%v: %w: %s", cmd.Args, err, out.String())
	}
	m := requestsPerSec.FindStringSubmatch(out.String())
	if m == nil {
		return 0, errors.New("no Requests/sec in its output: " + out.String())
	}
	return strconv.ParseFloat(m[1], 64)
}
