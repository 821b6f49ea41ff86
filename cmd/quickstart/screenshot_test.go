package main

import (
	"bytes"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The screenshot script drives the quick start and headless Chromium;
// these tests run it as a person would and look for anything it left
// running.

// TestScreenshotScriptTwice: scripts/screenshot-postmortem.sh runs twice in
// a row on the same ports (the system picks them for the first run, which
// names them); each run saves both screenshots, and after each nothing it
// started is left running and the ports are free again.
func TestScreenshotScriptTwice(t *testing.T) {
	needScriptTools(t)
	fn, emu := "127.0.0.1:0", "127.0.0.1:0"
	listened := regexp.MustCompile(`(?m)^the function listened on http://(\S+) and the emulator on http://(\S+)$`)
	for run := 1; run <= 2; run++ {
		out := t.TempDir()
		stdout, stderr, err := runScreenshotScript(t, fn, emu, out)
		if err != nil {
			t.Fatalf("run %d: %v\nstdout:\n%s\nstderr:\n%s", run, err, stdout, stderr)
		}
		m := listened.FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("run %d: stdout does not name the addresses:\n%s", run, stdout)
		}
		if run == 1 {
			fn, emu = m[1], m[2]
		} else if m[1] != fn || m[2] != emu {
			t.Errorf("run 2 listened on %s and %s, want the addresses it was given, %s and %s", m[1], m[2], fn, emu)
		}
		if !strings.Contains(stdout, "saved "+filepath.Join(out, "postmortem.png")+" (http://"+emu+"/wiki/spaces/INCIDENTS/pages/") ||
			!strings.Contains(stdout, filepath.Join(out, "issue.png")+" (http://"+emu+"/browse/OPS-1)") {
			t.Errorf("run %d: stdout does not name the pictures and the pages they show:\n%s", run, stdout)
		}
		for _, name := range []string{"postmortem.png", "issue.png"} {
			f, err := os.Open(filepath.Join(out, name))
			if err != nil {
				t.Fatalf("run %d: %v", run, err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatalf("run %d: %s is no PNG: %v", run, name, err)
			}
			if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2400 {
				t.Errorf("run %d: %s is %dx%d, want the 1280x2400 window", run, name, b.Dx(), b.Dy())
			}
		}
		for _, addr := range []string{fn, emu} {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("run %d: %s still taken after the script: %v", run, addr, err)
			}
			l.Close()
		}
	}
}

// TestScreenshotScriptFailsLoudly: when the quick start cannot start (its
// port is taken after the script checked it), the script exits non-zero,
// says why on stderr with the quick start's own reason, and leaves nothing
// running; a port already in use is named before anything starts.
func TestScreenshotScriptFailsLoudly(t *testing.T) {
	needScriptTools(t)
	// Bound but not listening: the script's connect check passes, the
	// quick start's bind fails.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	bound := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	_, stderr, err := runScreenshotScript(t, bound, "127.0.0.1:0", t.TempDir())
	if err == nil {
		t.Fatalf("the script succeeded with its function port taken:\n%s", stderr)
	}
	for _, want := range []string{"screenshot-postmortem: the quick start exited before opening its incident", "address already in use"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, stderr, err = runScreenshotScript(t, l.Addr().String(), "127.0.0.1:0", t.TempDir())
	if err == nil || !strings.Contains(stderr, l.Addr().String()+" is in use") {
		t.Errorf("with a port in use: %v\n%s", err, stderr)
	}
}

func needScriptTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "setsid", "timeout", "chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run scripts/screenshot-postmortem.sh (.ci/run installs it): %v", tool, err)
		}
	}
}

// runScreenshotScript runs the script in a process group of its own with
// its temporary files under a directory of the test's, and then checks
// that no process of that group, and none whose command line names that
// directory (the quick start binary, Chromium and its helpers, each in a
// session of its own), is left.
func runScreenshotScript(t *testing.T, fnAddr, emuAddr, out string) (stdout, stderr string, err error) {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command("bash", "../../scripts/screenshot-postmortem.sh", out)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "FUNCTION_ADDR="+fnAddr, "EMULATOR_ADDR="+emuAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if left := leftovers(t, cmd.Process.Pid, tmp); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
	return o.String(), e.String(), err
}

// leftovers lists the live processes (zombies aside: init reaps them) in
// process group pgid or whose command line contains dir.
func leftovers(t *testing.T, pgid int, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if fields[2] == strconv.Itoa(pgid) || bytes.Contains(cmdline, []byte(dir)) {
			left = append(left, ent.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return left
}
