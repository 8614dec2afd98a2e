package main

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
)

// filterTUN sits between wireguard-go and the netstack. What peers send reaches the netstack only
// when it is an unfragmented IPv4 TCP segment to a declared port of the tunnel address; everything
// else (ICMP, UDP, IPv6, fragments, other ports, other addresses) is dropped without an answer, so
// a port that is not declared looks exactly like nothing at all.
type filterTUN struct {
	tun.Device
	addr    [4]byte
	ports   map[uint16]bool
	dropped atomic.Uint64
}

func newFilterTUN(inner tun.Device, addr netip.Addr, ports []uint16) *filterTUN {
	f := &filterTUN{Device: inner, addr: addr.As4(), ports: map[uint16]bool{}}
	for _, p := range ports {
		f.ports[p] = true
	}
	return f
}

// admit: the packet at pkt is IPv4, TCP, not a fragment, to addr:<declared port>.
func (f *filterTUN) admit(pkt []byte) bool {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+4 {
		return false
	}
	if pkt[9] != 6 { // TCP
		return false
	}
	// More-fragments flag or a fragment offset: never reassembled here.
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return false
	}
	if [4]byte(pkt[16:20]) != f.addr {
		return false
	}
	return f.ports[binary.BigEndian.Uint16(pkt[ihl+2:ihl+4])]
}

func (f *filterTUN) Write(bufs [][]byte, offset int) (int, error) {
	kept := bufs[:0:0]
	for _, b := range bufs {
		if len(b) > offset && f.admit(b[offset:]) {
			kept = append(kept, b)
		} else {
			f.dropped.Add(1)
		}
	}
	if len(kept) > 0 {
		if _, err := f.Device.Write(kept, offset); err != nil {
			return 0, err
		}
	}
	return len(bufs), nil
}
