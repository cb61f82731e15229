package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"faultline.dev/faultline/sandbox"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print faultline's version and the pinned sandbox versions",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "faultline %s\nsandbox: Kubernetes %s, etcd %s, kwok %s\n",
				version, sandbox.KubernetesVersion, sandbox.EtcdVersion, sandbox.KwokVersion)
		},
	}
}
