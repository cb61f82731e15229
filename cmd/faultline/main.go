// Command faultline is the CLI of faultline, a Kubernetes-native chaos and
// resilience platform.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, shared by every command so that CI gates can rely on them.
const (
	exitOK      = 0
	exitFailed  = 1 // the experiment's verdict was Failed
	exitInvalid = 2 // bad input, or an error before a verdict
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "faultline",
		Short: "Inject real faults into Kubernetes and judge what users felt",
		Long: `faultline injects real faults into a Kubernetes cluster (node network loss,
etcd disk latency, memory pressure, SIGTERM during rollouts), measures what
users and the control plane felt, and judges it against your SLOs.

Start with a local cluster of your own:

  sudo faultline sandbox up
  export KUBECONFIG=$(faultline sandbox kubeconfig)
  kubectl get nodes`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCommand(), newWaitCommand(), newValidateCommand(), newGetCommand(), newDescribeCommand(), newAbortCommand(),
		newSandboxCommand(), newDemoCommand(), newCatalogCommand(), newScheduleCommand(), newReportCommand(), newImagesCommand(), newVersionCommand())
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(exitInvalid)
}
