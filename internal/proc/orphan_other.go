//go:build !linux

package proc

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's: Stop, Kill and the callers' cleanups end children there.
func dieWithParent(*exec.Cmd) {}
