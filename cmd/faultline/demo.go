package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/deploy"
	"faultline.dev/faultline/sandbox"
)

func newDemoCommand() *cobra.Command {
	var keep bool
	f := &sandboxFlags{cfg: sandbox.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up a sandbox, run the demo app on a real node, and show how to reach it",
		Long: `demo brings the sandbox up (or reuses a running one), deploys the demo app
(deploy/examples/demo-app.yaml) onto the real node, waits until it serves
through its Service's ClusterIP, and prints what runs and how to reach it.
It then waits for Enter (or Ctrl-C) and tears the sandbox down, unless --keep.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			p := sandbox.NewProgress(cmd.ErrOrStderr())
			st, err := sandbox.Status(f.cfg)
			if err != nil || !st.Ready {
				if st, err = sandbox.Up(ctx, f.cfg, p, false); err != nil {
					return err
				}
			} else {
				p.Printf("reusing sandbox %q", st.Name)
			}
			url, err := deployDemo(ctx, st.Kubeconfig, p, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nReach it from this machine:\n  curl %s/\n  export KUBECONFIG=%s\n  kubectl -n demo get pods,svc -o wide\n", url, st.Kubeconfig)
			if st.PrometheusURL != "" {
				fmt.Fprintf(out, "  prometheus: %s\n", st.PrometheusURL)
			}
			if keep {
				fmt.Fprintf(out, "\nThe sandbox stays up; remove it with: sudo faultline sandbox down --name %s\n", st.Name)
				return nil
			}
			fmt.Fprintln(out, "\nPress Enter to tear the sandbox down (Ctrl-C does too).")
			waitForEnter(ctx, cmd.InOrStdin())
			return sandbox.Down(f.cfg, p)
		},
	}
	f.addName(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the sandbox up when done")
	return cmd
}

func waitForEnter(ctx context.Context, in io.Reader) {
	line := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(in).ReadString('\n')
		close(line)
	}()
	select {
	case <-line:
	case <-ctx.Done():
	}
}

// deployDemo applies the demo app, waits until it answers through its
// ClusterIP and prints its pods. It returns the Service's URL.
func deployDemo(ctx context.Context, kubeconfig string, p *sandbox.Progress, out io.Writer) (string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", err
	}
	manifest, err := deploy.Files.ReadFile("examples/demo-app.yaml")
	if err != nil {
		return "", err
	}
	if err := deploy.Apply(ctx, cfg, manifest); err != nil {
		return "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	p.Printf("demo app applied; waiting until it is available")
	deadline := time.Now().Add(3 * time.Minute)
	var url string
	for {
		d, err := cs.AppsV1().Deployments("demo").Get(ctx, "demo-app", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == *d.Spec.Replicas {
			svc, err := cs.CoreV1().Services("demo").Get(ctx, "demo-app", metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			url = "http://" + svc.Spec.ClusterIP
			if body, err := httpGet(ctx, url+"/"); err == nil {
				p.Printf("demo app answers through its ClusterIP: %s", strings.TrimSpace(body))
				break
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("demo app not available through its ClusterIP after 3m: see `kubectl -n demo describe pods`")
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	pods, err := cs.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{LabelSelector: "app=demo-app"})
	if err != nil {
		return "", err
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPOD\tNODE\tIP\tPHASE")
	for _, pod := range pods.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", pod.Name, pod.Spec.NodeName, pod.Status.PodIP, pod.Status.Phase)
	}
	tw.Flush()
	return url, nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}
