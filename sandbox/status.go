package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status loads the sandbox's state; ErrNotFound when there is none.
func Status(c Config) (*State, error) {
	st, err := LoadState(c.Dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (start one with `faultline sandbox up --name %s`)", ErrNotFound, c.Name, c.Name)
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("sandbox %q: %w (its state and kubeconfig belong to root: try sudo)", c.Name, err)
	}
	return st, err
}

// Print writes the components, their PIDs and ports, the nodes and the
// URLs. It asks the API server for the nodes' readiness when it answers.
func (s *State) Print(ctx context.Context, w io.Writer) {
	state := "up"
	if !s.Ready {
		state = "not ready (bring-up incomplete or failed; `faultline sandbox down` removes it)"
	}
	fmt.Fprintf(w, "sandbox %q: %s, started %s ago\n", s.Name, state, time.Since(s.Started).Round(time.Second))
	fmt.Fprintf(w, "  api server:  %s\n  kubeconfig:  %s\n", s.Server, s.Kubeconfig)
	if e, ok := s.Components["etcd"]; ok && len(e.Ports) == 3 {
		// For prometheus.scrape.etcd where no Prometheus runs.
		fmt.Fprintf(w, "  etcd:        metrics at http://127.0.0.1:%d/metrics\n", e.Ports[2])
	}
	if s.PrometheusURL != "" {
		fmt.Fprintf(w, "  prometheus:  %s\n", s.PrometheusURL)
	}
	if s.IngressURL != "" {
		fmt.Fprintf(w, "  ingress:     %s (Services annotated %s: /PATH)\n", s.IngressURL, IngressPathAnnotation)
	}
	fmt.Fprintf(w, "  addresses:   %s (services %s)\n\n", NewPlan(s.Index).Super, NewPlan(s.Index).ServiceCIDR())

	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPID\tSTATE\tRSS\tPORTS\tNETNS")
	names := make([]string, 0, len(s.Components))
	for n := range s.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := s.Components[n]
		st, rss := "running", "-"
		if !alive(c.PID, c.Start) {
			st = "EXITED (see " + c.Log + ")"
		} else if kb := RSSKiB(c.PID); kb > 0 {
			rss = fmt.Sprintf("%dMi", kb/1024)
		}
		var ports []string
		for _, p := range c.Ports {
			ports = append(ports, fmt.Sprint(p))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Name, c.PID, st, rss, strings.Join(ports, ","), c.Netns)
	}
	tw.Flush()
	fmt.Fprintln(w)

	ready := map[string]string{}
	if cs, err := clientFor(s.Kubeconfig); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			for i := range list.Items {
				ready[list.Items[i].Name] = "NotReady"
				if NodeReady(&list.Items[i]) {
					ready[list.Items[i].Name] = "Ready"
				}
			}
		} else {
			fmt.Fprintf(w, "api server unreachable: %v\n", err)
		}
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tSTATUS\tADDRESS\tNETNS")
	shown := 0
	for _, n := range s.Nodes {
		if n.Kind == NodeKwok && shown >= 5 {
			continue // a thousand simulated nodes are summarised below
		}
		if n.Kind == NodeKwok {
			shown++
		}
		st := ready[n.Name]
		if st == "" {
			st = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Kind, st, n.Addr, n.Netns)
	}
	tw.Flush()
	if s.Config.SharedKwokNodes > shown {
		nReady := 0
		for _, n := range s.Nodes {
			if n.Kind == NodeKwok && ready[n.Name] == "Ready" {
				nReady++
			}
		}
		fmt.Fprintf(w, "... %d shared kwok nodes in all, %d Ready\n", s.Config.SharedKwokNodes, nReady)
	}
}

// RSSKiB is a process's resident memory in KiB (VmRSS), or 0.
func RSSKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}

// Healthy reports whether every recorded component is still running: a
// sandbox marked ready whose processes died (a reboot) is not usable.
func (s *State) Healthy() error { return s.checkAlive() }
