// Package proc runs the project's servers as child processes for the
// end-to-end tests (test/), the benchmarks and load driver (bench/,
// cmd/loadgen), the quick start and the deployment tests (deploy/, through a
// replace): it builds the binaries, starts a process on a port the
// operating system assigns, learns the URL from the process's own
// announcement, waits for its health checks, keeps its output and stops it,
// or runs one to its exit and returns its output.
//
// The port comes from the child's own listen on 127.0.0.1:0, so no port is
// picked and released first (a listen-and-close pick can be taken by
// another process before the child binds it). A child announces its URL
// with one of two lines: a line that is the URL (the emulator prints it on
// stdout), or a JSON log line with msg "listening" and key "url" (the
// function's cmd/rollback-incident logs it).
//
// Nothing here is used by the function itself.
package proc

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// ModuleRoot returns the directory of the function module: the nearest
// go.mod declaring "module function" at or above the working directory
// (the deploy module sits below it).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module function\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of module function not found at or above the working directory")
		}
		dir = parent
	}
}

// Build builds the command pkg (e.g. "./cmd/rollback-incident") of the
// function module at src ("": ModuleRoot) into dir and returns the
// binary's path. flags are more `go build` flags (e.g. "-ldflags=-s -w").
func Build(ctx context.Context, src, dir, pkg string, flags ...string) (string, error) {
	root := src
	if root == "" {
		var err error
		if root, err = ModuleRoot(); err != nil {
			return "", err
		}
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	// A caller's proxy settings (the deploy tests route HTTP through a
	// test proxy) must not reach the module download.
	cmd.Env = withoutProxy(os.Environ())
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

func withoutProxy(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Options says how to run a process.
type Options struct {
	Path string   // the binary
	Args []string // its arguments
	// Env is the process's whole environment, KEY=VALUE. LISTEN_ADDRESS is
	// set to 127.0.0.1:0 unless Env names it.
	Env []string
	Dir string // working directory; "" the caller's
	// Output, when set, receives the process's output as it comes, as well
	// as Output().
	Output io.Writer
	// Timeout bounds the wait for the announcement; 0 means 30 s.
	Timeout time.Duration
}

// Process is a running child process.
type Process struct {
	URL     string    // e.g. http://127.0.0.1:41234, from the announcement
	Started time.Time // just before exec

	cmd    *exec.Cmd
	out    buffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// Start runs the process and returns once it has announced the URL it
// listens on. It fails if the process exits first, the timeout passes or
// ctx ends; the process is then killed.
func Start(ctx context.Context, o Options) (*Process, error) {
	p, announced, err := launch(o)
	if err != nil {
		return nil, err
	}
	timeout := cmp.Or(o.Timeout, 30*time.Second)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.URL = <-announced:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it listened (%v):\n%s", o.Path, p.err, p.Output())
	case <-timer.C:
		p.Kill()
		return nil, fmt.Errorf("%s did not announce its URL within %v:\n%s", o.Path, timeout, p.Output())
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// Run runs the process to its exit, for one that is expected to stop by
// itself (a refused configuration, a -once run), and returns its output
// and its exit error (nil for status 0). It waits for no announcement and
// ignores o.Timeout: when ctx ends first, the process is killed and the
// error wraps ctx's.
func Run(ctx context.Context, o Options) (string, error) {
	p, _, err := launch(o)
	if err != nil {
		return "", err
	}
	select {
	case <-p.exited:
		return p.Output(), p.err
	case <-ctx.Done():
		p.Kill()
		return p.Output(), fmt.Errorf("%s still running: %w", o.Path, ctx.Err())
	}
}

// launch execs the process with its output, stdout and stderr through one
// pipe so that lines stay whole and in order, kept by p and passed to
// o.Output. The first announcement of a URL is sent on the channel, which
// holds it until it is read, if ever.
func launch(o Options) (*Process, <-chan string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("output pipe for %s: %w", o.Path, err)
	}
	env := o.Env
	if !hasKey(env, "LISTEN_ADDRESS") {
		env = append(env[:len(env):len(env)], "LISTEN_ADDRESS=127.0.0.1:0")
	}
	p := &Process{cmd: exec.Command(o.Path, o.Args...), exited: make(chan struct{})}
	p.cmd.Env, p.cmd.Dir = env, o.Dir
	p.cmd.Stdout, p.cmd.Stderr = w, w
	dieWithParent(p.cmd)
	p.Started = time.Now()
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start %s: %w", o.Path, err)
	}
	announced := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.copyOutput(r, o.Output, announced)
	}()
	go func() {
		p.err = p.cmd.Wait()
		<-copied // all output is in before exited closes
		r.Close()
		close(p.exited)
	}()
	return p, announced, nil
}

func hasKey(env []string, key string) bool {
	return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// copyOutput keeps the output line by line and passes the first
// announcement on.
func (p *Process) copyOutput(r io.Reader, tee io.Writer, announced chan<- string) {
	br := bufio.NewReader(r)
	found := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			p.out.Write(line)
			if tee != nil {
				_, _ = tee.Write(line)
			}
			if !found {
				if u, ok := Announcement(line); ok {
					found = true
					announced <- u
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Announcement reports the URL a line announces: the line is the URL, or
// it is a JSON log line with msg "listening" and the URL under "url".
func Announcement(line []byte) (string, bool) {
	s := strings.TrimSpace(string(line))
	if strings.HasPrefix(s, "http://") && !strings.ContainsAny(s, " \t") {
		return s, true
	}
	var l struct {
		Msg string `json:"msg"`
		URL string `json:"url"`
	}
	if json.Unmarshal([]byte(s), &l) == nil && l.Msg == "listening" && strings.HasPrefix(l.URL, "http://") {
		return l.URL, true
	}
	return "", false
}

// WaitOK polls GET path every interval until it answers 200 and returns
// the time since exec. It fails when the process exits or ctx ends.
func (p *Process) WaitOK(ctx context.Context, path string, interval time.Duration) (time.Duration, error) {
	// A fresh connection each poll: a kept-alive one to an earlier process
	// on the same port must not answer for this one.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
		if err != nil {
			return 0, err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.Started), nil
			}
		}
		select {
		case <-p.exited:
			return 0, fmt.Errorf("process exited (%v) before GET %s answered 200:\n%s", p.err, path, p.Output())
		case <-ctx.Done():
			return 0, fmt.Errorf("GET %s not 200: %w:\n%s", path, ctx.Err(), p.Output())
		case <-tick.C:
		}
	}
}

// Ready waits up to timeout for GET /health/readiness to answer 200.
func (p *Process) Ready(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := p.WaitOK(ctx, "/health/readiness", 10*time.Millisecond)
	return err
}

// Output returns what the process has written so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// Exited is closed once the process has exited and its output is read.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error (nil for status 0), once Exited.
func (p *Process) Err() error {
	<-p.exited
	return p.err
}

// Pid is the process id, for /proc readings and signals.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill ends the process at once (SIGKILL), as an OOM kill or a node loss
// would, and waits until it is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGINT (func-go drains and exits) and kills the process if
// it has not exited within grace.
func (p *Process) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.Kill()
	}
}

// buffer is a bytes.Buffer safe for one writer and many readers.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *buffer) Write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
}

func (s *buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
