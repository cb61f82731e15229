package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"faultline.dev/faultline/sandbox"
)

// sandboxFlags are the flags shared by the sandbox commands.
type sandboxFlags struct {
	cfg     sandbox.Config
	timings string
	retain  bool
}

func (f *sandboxFlags) addName(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cfg.Name, "name", f.cfg.Name, "sandbox name; several sandboxes can run side by side")
}

func newSandboxCommand() *cobra.Command {
	f := &sandboxFlags{cfg: sandbox.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run a real local Kubernetes cluster to try faultline on (needs root)",
		Long: `A sandbox is a real Kubernetes cluster on this machine, built from pinned
binaries (make tools) with nothing pulled from a registry:

  - etcd, kube-apiserver, kube-controller-manager and kube-scheduler;
  - kwok nodes: many simulated nodes in one shared kwok process, plus
    "isolated" nodes, each a kwok process in its own network namespace whose
    link to the API server can really be cut;
  - real nodes: each a network namespace with containerd, runc, a CNI bridge,
    a kubelet and kube-proxy (nftables), running real pods from images built
    from local Go binaries (imagePullPolicy: Never);
  - optionally Prometheus, scraping etcd, the API server, kubelets and pods;
  - optionally an ingress: nginx on the sandbox bridge in front of the ready
    endpoints of Services annotated ` + "`" + sandbox.IngressPathAnnotation + `: /PATH` + "`" + `.

Every sandbox range lives in 10.(200+N).0.0/16 and is routed to the sandbox's
own bridge, so no packet leaves the machine. 'down' removes everything 'up'
made, even after an 'up' that was killed halfway.`,
		Example: `  sudo faultline sandbox up --timings fast --prometheus --ingress
  kubectl --kubeconfig "$(faultline sandbox kubeconfig)" get nodes
  sudo faultline sandbox status
  sudo faultline sandbox down`,
	}

	up := &cobra.Command{
		Use:   "up",
		Short: "Bring a sandbox up and wait until every node is Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.cfg.Timings = sandbox.Timings(f.timings)
			p := sandbox.NewProgress(cmd.ErrOrStderr())
			st, err := sandbox.Up(cmd.Context(), f.cfg, p, f.retain)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nsandbox %q is up in %.1fs.\n  export KUBECONFIG=%s\n  kubectl get nodes\n",
				st.Name, time.Since(st.Started).Seconds(), st.Kubeconfig)
			if st.PrometheusURL != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  prometheus: %s\n", st.PrometheusURL)
			}
			if st.IngressURL != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  ingress: %s (annotate a Service with %s: /PATH, then GET %s/PATH/)\n",
					st.IngressURL, sandbox.IngressPathAnnotation, st.IngressURL)
			}
			return nil
		},
	}
	f.addName(up)
	up.Flags().IntVar(&f.cfg.SharedKwokNodes, "kwok-nodes", f.cfg.SharedKwokNodes, "simulated nodes in one shared kwok process (1,000 work)")
	up.Flags().IntVar(&f.cfg.IsolatedKwokNodes, "isolated-nodes", f.cfg.IsolatedKwokNodes, "simulated nodes each in its own network namespace, for real network loss")
	up.Flags().IntVar(&f.cfg.RealNodes, "real-nodes", f.cfg.RealNodes, "real nodes with containerd, kubelet and kube-proxy")
	up.Flags().Var(&bytesFlag{&f.cfg.RealNodeMemory}, "real-node-memory",
		"each real node's allocatable memory, such as 1Gi (default 1Gi): the kubelet reserves the rest of the machine, so that\n"+
			"memory pressure reaches the kubelet's eviction threshold with a bounded allocation")
	up.Flags().BoolVar(&f.cfg.Prometheus, "prometheus", false, "also run Prometheus (Debian's package) scraping the cluster")
	up.Flags().BoolVar(&f.cfg.Faultline, "faultline", false, "also install faultline's CRDs and run its controller and an agent per isolated and real node")
	up.Flags().BoolVar(&f.cfg.Install, "install", false,
		"install faultline with its Helm chart (the Helm SDK, as helm install would): the controller and an agent per real\n"+
			"node run as pods from images built from the local binaries; isolated nodes keep agent processes. Excludes --faultline")
	up.Flags().BoolVar(&f.cfg.ChaosMesh, "chaos-mesh", false,
		"also install Chaos Mesh's CRDs and run its controller manager (built on first use, once: make tools-chaos-mesh), for spec.engine: chaos-mesh;\n"+
			"without its chaos-daemon only PodChaos acts for real")
	up.Flags().BoolVar(&f.cfg.Ingress, "ingress", false,
		"also run an ingress, Debian's nginx on the sandbox bridge (its URL is in the output and in status), in front of\n"+
			"the ready endpoints of each Service annotated "+sandbox.IngressPathAnnotation+": /PATH; GET URL/PATH/x reaches /x.\n"+
			"No ready endpoint: 503. One endpoint per request, no retry: a refused endpoint is a real 502 from nginx")
	up.Flags().StringVar(&f.timings, "timings", string(sandbox.TimingsUpstream),
		"node-lifecycle timings: upstream (grace 50s, tolerations 300s, Kubernetes' defaults) or fast (grace 20s, tolerations 30s, for CI)")
	up.Flags().BoolVar(&f.retain, "retain", false, "keep what was made when bring-up fails, to debug it (remove it with down)")
	up.Flags().StringVar(&f.cfg.BinDir, "bin-dir", "", "directory with the static faultline, demo-app and pause binaries (default: this program's)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove everything the sandbox made (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errors.New("faultline sandbox down must run as root (try: sudo)")
			}
			return sandbox.Down(f.cfg, sandbox.NewProgress(cmd.ErrOrStderr()))
		},
	}
	f.addName(down)

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the sandbox's components, PIDs, ports, nodes and URLs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sandbox.Status(f.cfg)
			if err != nil {
				return err
			}
			st.Print(cmd.Context(), cmd.OutOrStdout())
			return nil
		},
	}
	f.addName(status)

	kubeconfig := &cobra.Command{
		Use:     "kubeconfig",
		Short:   "Print the path of the sandbox's admin kubeconfig",
		Example: `  kubectl --kubeconfig "$(faultline sandbox kubeconfig)" get nodes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sandbox.Status(f.cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), st.Kubeconfig)
			return nil
		},
	}
	f.addName(kubeconfig)

	var podTargets struct{ kubeconfig, listen string }
	targets := &cobra.Command{
		Use:    "pod-targets",
		Short:  "Serve Prometheus HTTP discovery of annotated pods (a sandbox component)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sandbox.ServePodTargets(cmd.Context(), podTargets.kubeconfig, podTargets.listen)
		},
	}
	targets.Flags().StringVar(&podTargets.kubeconfig, "kubeconfig", "", "kubeconfig of the sandbox")
	targets.Flags().StringVar(&podTargets.listen, "listen", "127.0.0.1:0", "address to serve on")

	var readinessKubeconfig string
	readiness := &cobra.Command{
		Use:    "kwok-pod-readiness",
		Short:  "Report pods on kwok nodes Ready again once their node is back (a sandbox component)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sandbox.RestoreKwokPodReadiness(cmd.Context(), readinessKubeconfig)
		},
	}
	readiness.Flags().StringVar(&readinessKubeconfig, "kubeconfig", "", "kubeconfig of the sandbox")

	var ingressSync sandbox.IngressSyncOptions
	syncCmd := &cobra.Command{
		Use:    "ingress-sync",
		Short:  "Keep the sandbox ingress's nginx.conf in step with annotated Services (a sandbox component)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sandbox.SyncIngress(cmd.Context(), ingressSync)
		},
	}
	syncCmd.Flags().StringVar(&ingressSync.Kubeconfig, "kubeconfig", "", "kubeconfig of the sandbox")
	syncCmd.Flags().StringVar(&ingressSync.SandboxDir, "sandbox-dir", "", "the sandbox's directory: its state names nginx's master process")
	syncCmd.Flags().StringVar(&ingressSync.Ingress, "ingress", "", "HOST:PORT nginx listens on")
	syncCmd.Flags().StringVar(&ingressSync.Listen, "listen", "127.0.0.1:0", "address to serve /readyz on")
	syncCmd.Flags().StringVar(&ingressSync.Nginx, "nginx", "/usr/sbin/nginx", "nginx binary, for nginx -t")

	cmd.AddCommand(up, down, status, kubeconfig, targets, readiness, syncCmd)
	return cmd
}

// bytesFlag is a flag given as a Kubernetes quantity, such as 1Gi.
type bytesFlag struct{ v *int64 }

func (b *bytesFlag) String() string {
	if b.v == nil || *b.v == 0 {
		return ""
	}
	return resource.NewQuantity(*b.v, resource.BinarySI).String()
}

func (b *bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a quantity of bytes, such as 1Gi: %w", s, err)
	}
	*b.v = q.Value()
	return nil
}

func (b *bytesFlag) Type() string { return "quantity" }
