package natskv_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a loopback TCP proxy in front of one address. Pausing it holds
// every byte it has read until it resumes: the link it carries stalls for
// real, as a congested network or a paused node would make it, while the
// connections stay up.
type proxy struct {
	ln     net.Listener
	target atomic.Pointer[string] // nil: nothing behind it yet, refuse
	held   atomic.Int64           // reads that had to wait for a resume

	mu     sync.Mutex
	flow   chan struct{} // closed while traffic flows
	conns  map[net.Conn]bool
	closed bool
}

// newProxy listens on a port the OS assigns. Until setTarget it closes
// every connection at once, as a node that is not up yet would.
func newProxy(t *testing.T) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, flow: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.flow)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setTarget(addr string) { p.target.Store(&addr) }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(client net.Conn) {
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

func (p *proxy) track(cs ...net.Conn) bool {
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

func (p *proxy) pipe(dst, src net.Conn) {
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
func (p *proxy) wait() {
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

func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow:
		p.flow = make(chan struct{})
	default:
	}
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flow:
	default:
		close(p.flow)
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.ln.Close()
	p.resume()
	for c := range conns {
		c.Close()
	}
}

// staller pauses proxies for stall out of every period, starting at once,
// until the test ends: a node whose links these are falls behind the
// others and catches up, over and over.
type staller struct {
	stalls atomic.Int32 // stalls begun
}

func stallEvery(t *testing.T, period, stall time.Duration, ps ...*proxy) *staller {
	st := &staller{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			for _, p := range ps {
				p.pause()
			}
			st.stalls.Add(1)
			select {
			case <-stop:
			case <-time.After(stall):
			}
			for _, p := range ps {
				p.resume()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return st
}
