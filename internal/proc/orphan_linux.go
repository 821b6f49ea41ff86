package proc

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel send the child SIGTERM when this process
// dies, however it dies (SIGKILL, go test's -timeout panic), so no child
// outlives its parent holding a port or a store: the function drains on
// SIGTERM as it would in a pod. (The signal follows the OS thread that
// started the child; Go ends threads only when a goroutine locked to one
// returns, which nothing here does.)
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
