package memstress

import (
	"os/exec"
	"runtime"
	"sync"
)

// The stressors are started with PR_SET_PDEATHSIG SIGKILL, so that they die
// with the agent, even killed with -9. The kernel sends it when the thread
// that forked the child ends, not the process: a goroutine that locked its
// thread and returned takes that thread down with it. So every stressor is
// forked from one thread, locked for the life of the process.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// startOnForkThread starts cmd from the fork thread.
func startOnForkThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnReqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReqs <- spawnReq{cmd, done}
	return <-done
}
