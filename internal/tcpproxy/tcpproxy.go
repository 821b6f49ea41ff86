// Package tcpproxy is a loopback TCP proxy for tests: a server that is
// down and then up at one address the operating system assigned, and a
// link that stalls for real while its connections stay up.
package tcpproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a loopback TCP proxy in front of one address. Pausing it holds
// every byte it has read until it resumes: the link it carries stalls for
// real, as a congested network or a paused node would make it, while the
// connections stay up.
type Proxy struct {
	ln     net.Listener
	target atomic.Pointer[string] // nil: nothing behind it yet, refuse
	held   atomic.Int64           // writes that had to wait for a resume

	mu     sync.Mutex
	flow   chan struct{} // closed while traffic flows
	conns  map[net.Conn]bool
	closed bool
}

// New listens on a port the OS assigns, until the test ends. Until
// SetTarget it closes every connection at once, as a server that is not
// up yet would.
func New(tb testing.TB) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, flow: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.flow)
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget forwards the connections accepted from now on to addr.
func (p *Proxy) SetTarget(addr string) { p.target.Store(&addr) }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	target := p.target.Load()
	if target == nil {
		client.Close()
		return
	}
	upstream, err := net.Dial("tcp", *target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, upstream) {
		client.Close()
		upstream.Close()
		return
	}
	go p.pipe(upstream, client)
	go p.pipe(client, upstream)
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: closing both ends passes it on
		}
	}
}

// wait blocks while the proxy is paused.
func (p *Proxy) wait() {
	p.mu.Lock()
	flow := p.flow
	p.mu.Unlock()
	select {
	case <-flow:
	default:
		p.held.Add(1)
		<-flow
	}
}

// Pause holds every byte read from now on until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow:
		p.flow = make(chan struct{})
	default:
	}
}

// Resume lets the held bytes and the traffic after them through.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow:
	default:
		close(p.flow)
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.ln.Close()
	p.Resume()
	for c := range conns {
		c.Close()
	}
}

// Held counts the writes that had to wait for a Resume: a stall that
// held up no traffic tested nothing.
func (p *Proxy) Held() int64 { return p.held.Load() }
