// Command pause is the sandbox ("infra") container of the local cluster's pods: it
// holds the pod's namespaces open, reaps any child that is re-parented to it, and
// exits on SIGINT or SIGTERM. Build it static: CGO_ENABLED=0 go build ./hack/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; several SIGCHLDs may have merged into one.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
