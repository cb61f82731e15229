// Command pause is the sandbox's pod infrastructure image: it holds a pod's
// namespaces and waits. As PID 1 it must handle SIGTERM itself, since the
// kernel ignores default-action signals sent to PID 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	// Reap children that exit inside the pod's PID namespace when it is
	// shared; harmless otherwise.
	signal.Ignore(syscall.SIGCHLD)
	<-sig
}
