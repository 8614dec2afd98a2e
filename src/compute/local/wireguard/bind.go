package main

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

// addrBind is a conn.Bind on one UDP socket bound to a given address (wireguard-go's own
// StdNetBind always listens on every address). The socket is usually bound before the device
// exists (choosing the port from a range); Open takes it over, and binds again after a Close.
type addrBind struct {
	mu      sync.Mutex
	addr    netip.AddrPort
	pending *net.UDPConn
	conn    *net.UDPConn
}

type addrEndpoint struct{ ap netip.AddrPort }

func (e *addrEndpoint) ClearSrc()           {}
func (e *addrEndpoint) SrcToString() string { return "" }
func (e *addrEndpoint) DstToString() string { return e.ap.String() }
func (e *addrEndpoint) DstToBytes() []byte  { b, _ := e.ap.MarshalBinary(); return b }
func (e *addrEndpoint) DstIP() netip.Addr   { return e.ap.Addr() }
func (e *addrEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

func udpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp"
}

// listenUDP binds addr:port, trying `prefer` first and then every port of [lo, hi].
func listenUDP(addr netip.Addr, prefer, lo, hi int) (*net.UDPConn, int, error) {
	var lastErr error
	try := func(p int) *net.UDPConn {
		c, err := net.ListenUDP(udpNetwork(addr), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(p))))
		if err != nil {
			lastErr = err
			return nil
		}
		return c
	}
	if prefer >= lo && prefer <= hi && prefer > 0 {
		if c := try(prefer); c != nil {
			return c, prefer, nil
		}
	}
	for p := lo; p <= hi; p++ {
		if p == prefer {
			continue
		}
		if c := try(p); c != nil {
			return c, p, nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("empty port range")
	}
	return nil, 0, &portsExhausted{lo: lo, hi: hi, err: lastErr}
}

type portsExhausted struct {
	lo, hi int
	err    error
}

func (e *portsExhausted) Error() string {
	return "no free UDP port in the range: " + e.err.Error()
}

func (b *addrBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c := b.pending
	b.pending = nil
	if c == nil {
		var err error
		c, err = net.ListenUDP(udpNetwork(b.addr.Addr()), net.UDPAddrFromAddrPort(b.addr))
		if err != nil {
			return nil, 0, err
		}
	}
	b.conn = c
	recv := func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, ap, err := c.ReadFromUDPAddrPort(packets[0])
		if err != nil {
			return 0, err
		}
		sizes[0] = n
		eps[0] = &addrEndpoint{ap: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
		return 1, nil
	}
	port := b.addr.Port()
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok {
		port = uint16(la.Port)
	}
	return []conn.ReceiveFunc{recv}, port, nil
}

func (b *addrBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	if b.conn != nil {
		err = b.conn.Close()
		b.conn = nil
	}
	if b.pending != nil {
		_ = b.pending.Close()
		b.pending = nil
	}
	return err
}

func (b *addrBind) SetMark(uint32) error { return nil }
func (b *addrBind) BatchSize() int       { return 1 }

func (b *addrBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*addrEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	c := b.conn
	b.mu.Unlock()
	if c == nil {
		return net.ErrClosed
	}
	dst := e.ap
	if b.addr.Addr().Is6() && dst.Addr().Is4() {
		dst = netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, dst); err != nil {
			return err
		}
	}
	return nil
}

func (b *addrBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &addrEndpoint{ap: ap}, nil
}
