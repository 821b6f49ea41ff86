package harness

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MachineBusy returns the CPU time all cores of the machine have spent
// busy (not idle or waiting for I/O) since boot, from /proc/stat.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest time is already counted in user
			break
		}
		busy += n
	}
	const hz = 100
	return time.Duration(busy) * time.Second / hz, nil
}

// ChildrenCPU is the CPU time of this process's children that have been
// waited for.
func ChildrenCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OtherLoad measures, between Start and Stop, the CPU time that processes
// other than this one and its children used: the noise of a shared
// machine.
type OtherLoad struct {
	machine, self, children time.Duration
	start                   time.Time
}

// StartOtherLoad starts a measurement.
func StartOtherLoad() *OtherLoad {
	m, _ := MachineBusy()
	return &OtherLoad{machine: m, self: SelfCPU(), children: ChildrenCPU(), start: time.Now()}
}

// Stop returns the other processes' CPU time and its share of the
// machine's capacity (cores × wall time).
func (o *OtherLoad) Stop(cores int) (time.Duration, float64) {
	m, _ := MachineBusy()
	other := (m - o.machine) - (SelfCPU() - o.self) - (ChildrenCPU() - o.children)
	other = max(other, 0)
	wall := time.Since(o.start)
	return other, float64(other) / float64(wall*time.Duration(cores))
}

// WaitIdle waits until the machine has been less than threshold busy
// (fraction of all cores) for quiet consecutive seconds, or until limit
// passes. It reports whether it got there and how long it waited.
func WaitIdle(threshold float64, quiet int, limit time.Duration, cores int) (bool, time.Duration) {
	start := time.Now()
	run := 0
	for time.Since(start) < limit {
		b0, err := MachineBusy()
		if err != nil {
			return false, time.Since(start)
		}
		time.Sleep(time.Second)
		b1, _ := MachineBusy()
		if float64(b1-b0)/float64(time.Second*time.Duration(cores)) < threshold {
			run++
			if run >= quiet {
				return true, time.Since(start)
			}
		} else {
			run = 0
		}
	}
	return false, time.Since(start)
}
