package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

const (
	tunnelMTU      = 1420
	maxPeers       = 253
	maxConnections = 512
	maxRequest     = 1 << 20
)

type forward struct {
	guestPort uint16
	target    string // 127.0.0.1:<hostPort>
}

type server struct {
	dev        *device.Device
	filter     *filterTUN
	tnet       *netstack.Net
	prefix     netip.Prefix
	addr       netip.Addr
	publicKey  string
	listenPort int
	forwards   []forward

	mu        sync.Mutex
	peers     map[string]netip.Addr // base64 public key → its tunnel address
	byAddr    map[netip.Addr]string
	conns     map[net.Conn]string // open tunnel connections → the key they came from
	targets   map[uint16]string   // guest port → its loopback forward now (QEMU may pick new ones on a restart)
	listeners []net.Listener
	stopOnce  sync.Once
	stopped   chan struct{}
}

type peerSpec struct {
	PublicKey string `json:"publicKey"`
	Address   string `json:"address"`
}

type forwardSpec struct {
	GuestPort int    `json:"guestPort"`
	Target    string `json:"target"`
}

type request struct {
	Cmd      string        `json:"cmd"`
	Peers    []peerSpec    `json:"peers"`
	Forwards []forwardSpec `json:"forwards"`
}

type peerStatus struct {
	PublicKey       string `json:"publicKey"`
	Address         string `json:"address"`
	LastHandshakeMs int64  `json:"lastHandshakeMs"`
	RxBytes         int64  `json:"rxBytes"`
	TxBytes         int64  `json:"txBytes"`
}

type response struct {
	OK          bool          `json:"ok"`
	Error       string        `json:"error,omitempty"`
	PublicKey   string        `json:"publicKey,omitempty"`
	ListenPort  int           `json:"listenPort,omitempty"`
	Address     string        `json:"address,omitempty"`
	Ports       []int         `json:"ports,omitempty"`
	Peers       []peerStatus  `json:"peers,omitempty"`
	Forwards    []forwardSpec `json:"forwards,omitempty"`
	Connections int           `json:"connections"`
	Dropped     uint64        `json:"dropped"`
}

func parsePortRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return 0, 0, fmt.Errorf("invalid --port-range %q (expected LO-HI)", s)
	}
	return a, b, nil
}

func parseForward(s string) (forward, error) {
	g, t, ok := strings.Cut(s, "=")
	gp, err := strconv.Atoi(g)
	if !ok || err != nil || gp < 1 || gp > 65535 {
		return forward{}, fmt.Errorf("invalid --forward %q (expected GUESTPORT=127.0.0.1:HOSTPORT)", s)
	}
	ap, err := netip.ParseAddrPort(t)
	// Only ever to this host's loopback: the QEMU forward of the guest's port.
	if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
		return forward{}, fmt.Errorf("invalid --forward %q: the target must be a loopback address:port", s)
	}
	return forward{guestPort: uint16(gp), target: ap.String()}, nil
}

func readPrivateKey() ([]byte, error) {
	line, err := bufio.NewReaderSize(os.Stdin, 256).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("reading the private key from stdin: %v", err)
	}
	return parseKey(line)
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	address := fs.String("address", "", "tunnel address of the machine with its prefix, e.g. 100.96.3.1/24")
	listen := fs.String("listen", "0.0.0.0", "address to bind the UDP port on")
	portRange := fs.String("port-range", "51820-51919", "UDP ports to choose from")
	prefer := fs.Int("prefer-port", 0, "port to try first (the one used before)")
	control := fs.String("control", "", "control socket path")
	pidFile := fs.String("pid-file", "", "pid file, written once ready")
	uid := fs.Int("uid", -1, "drop to this user id once the sockets and files are open (needs root; never 0)")
	gid := fs.Int("gid", -1, "and this group id")
	var fwdFlags multiFlag
	fs.Var(&fwdFlags, "forward", "GUESTPORT=127.0.0.1:HOSTPORT (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	syscall.Umask(0o077)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)

	prefix, err := netip.ParsePrefix(*address)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() < 16 || prefix.Bits() > 30 {
		return fmt.Errorf("invalid --address %q (expected an IPv4 address with its prefix, e.g. 100.96.3.1/24)", *address)
	}
	listenAddr, err := netip.ParseAddr(*listen)
	if err != nil {
		return fmt.Errorf("invalid --listen %q", *listen)
	}
	lo, hi, err := parsePortRange(*portRange)
	if err != nil {
		return err
	}
	if *control == "" {
		return errors.New("--control is required")
	}
	var forwards []forward
	seen := map[uint16]bool{}
	for _, f := range fwdFlags {
		fw, err := parseForward(f)
		if err != nil {
			return err
		}
		if seen[fw.guestPort] {
			return fmt.Errorf("guest port %d forwarded twice", fw.guestPort)
		}
		seen[fw.guestPort] = true
		forwards = append(forwards, fw)
	}
	priv, err := readPrivateKey()
	if err != nil {
		return err
	}
	pub, err := publicKeyOf(priv)
	if err != nil {
		return err
	}

	udp, port, err := listenUDP(listenAddr, *prefer, lo, hi)
	if err != nil {
		return err
	}
	tunDev, tnet, err := netstack.CreateNetTUN([]netip.Addr{prefix.Addr()}, nil, tunnelMTU)
	if err != nil {
		_ = udp.Close()
		return err
	}
	ports := make([]uint16, 0, len(forwards))
	for _, f := range forwards {
		ports = append(ports, f.guestPort)
	}
	filter := newFilterTUN(tunDev, prefix.Addr(), ports)
	bind := &addrBind{addr: netip.AddrPortFrom(listenAddr, uint16(port)), pending: udp}
	dev := device.NewDevice(filter, bind, device.NewLogger(device.LogLevelError, "reclo-wg: "))
	s := &server{
		dev: dev, filter: filter, tnet: tnet, prefix: prefix.Masked(), addr: prefix.Addr(), publicKey: pub, listenPort: port, forwards: forwards,
		peers: map[string]netip.Addr{}, byAddr: map[netip.Addr]string{}, conns: map[net.Conn]string{}, targets: map[uint16]string{}, stopped: make(chan struct{}),
	}
	for _, f := range forwards {
		s.targets[f.guestPort] = f.target
	}

	// Everything that needs this process's own rights first: the control socket and the pid
	// file (in the machine's directory, which only the worker's user may enter), then the drop.
	_ = os.Remove(*control)
	ctl, err := net.Listen("unix", *control)
	if err != nil {
		dev.Close()
		return fmt.Errorf("control socket: %v", err)
	}
	_ = os.Chmod(*control, 0o600)
	var pidOut *os.File
	if *pidFile != "" {
		_ = os.Remove(*pidFile)
		if pidOut, err = os.OpenFile(*pidFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			dev.Close()
			return fmt.Errorf("pid file: %v", err)
		}
	}
	if *uid >= 0 || *gid >= 0 {
		if err := dropPrivileges(*uid, *gid); err != nil {
			dev.Close()
			return err
		}
	}
	go s.serveControl(ctl)

	if err := dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", keyHex(priv), port)); err != nil {
		dev.Close()
		return fmt.Errorf("configuring the device: %v", err)
	}
	for i := range priv {
		priv[i] = 0
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return fmt.Errorf("bringing the device up: %v", err)
	}
	for _, f := range forwards {
		l, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(s.addr, f.guestPort))
		if err != nil {
			s.shutdown()
			return fmt.Errorf("listening on %s:%d in the tunnel: %v", s.addr, f.guestPort, err)
		}
		s.listeners = append(s.listeners, l)
		go s.accept(l, f)
	}

	// Ready: the pid (the caller waits for it), then the READY line.
	if pidOut != nil {
		_, _ = pidOut.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		_ = pidOut.Close()
	}
	ready, _ := json.Marshal(map[string]any{"publicKey": pub, "listenPort": port, "address": s.addr.String()})
	fmt.Printf("READY %s\n", ready)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
	case <-s.stopped:
	}
	s.shutdown()
	_ = ctl.Close()
	// Best effort: after a privilege drop these are the caller's to remove.
	_ = os.Remove(*control)
	if *pidFile != "" {
		_ = os.Remove(*pidFile)
	}
	return nil
}

// dropPrivileges switches every thread to uid/gid with no supplementary groups, and checks it.
func dropPrivileges(uid, gid int) error {
	if uid <= 0 || gid <= 0 {
		return fmt.Errorf("--uid and --gid must both name an unprivileged user (got %d:%d)", uid, gid)
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("setgroups: %v", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %v", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %v", uid, err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid || os.Getgid() != gid || os.Getegid() != gid {
		return fmt.Errorf("still running as %d:%d after dropping to %d:%d", os.Geteuid(), os.Getegid(), uid, gid)
	}
	if err := syscall.Setuid(0); err == nil {
		return fmt.Errorf("could regain root after dropping to %d", uid)
	}
	return nil
}

func (s *server) shutdown() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		for _, l := range s.listeners {
			_ = l.Close()
		}
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.dev.Close()
	})
}

func (s *server) accept(l net.Listener, f forward) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.handle(c, f)
	}
}

// handle proxies one connection from a peer to the guest's forwarded port.
func (s *server) handle(c net.Conn, f forward) {
	remote, ok := c.RemoteAddr().(*net.TCPAddr)
	var from netip.Addr
	if ok {
		from, _ = netip.AddrFromSlice(remote.IP)
		from = from.Unmap()
	}
	s.mu.Lock()
	key, admitted := s.byAddr[from]
	if !admitted || len(s.conns) >= maxConnections {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	s.conns[c] = key
	target := s.targets[f.guestPort]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	pipe(c, up)
}

func (s *server) serveControl(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go s.controlConn(c)
	}
}

func (s *server) controlConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(&limitedReader{r: c, n: maxRequest}, 64*1024).ReadString('\n')
	var req request
	var resp response
	if err != nil && line == "" {
		return
	}
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		resp = response{Error: "bad request: " + err.Error()}
	} else {
		resp = s.do(req)
	}
	out, _ := json.Marshal(resp)
	_, _ = c.Write(append(out, '\n'))
	if req.Cmd == "stop" && resp.OK {
		close(s.stopped)
	}
}

type limitedReader struct {
	r net.Conn
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too large")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func (s *server) do(req request) response {
	switch req.Cmd {
	case "set-peers":
		if err := s.setPeers(req.Peers); err != nil {
			return response{Error: err.Error()}
		}
		return response{OK: true}
	case "set-forwards":
		if err := s.setForwards(req.Forwards); err != nil {
			return response{Error: err.Error()}
		}
		return response{OK: true}
	case "status":
		return s.status()
	case "stop":
		return response{OK: true}
	default:
		return response{Error: fmt.Sprintf("unknown command %q", req.Cmd)}
	}
}

// setPeers makes the admitted peers exactly `list`: removed keys lose their sessions at once
// (wireguard-go drops their keypairs) and their open connections are closed; kept keys keep
// their sessions.
func (s *server) setPeers(list []peerSpec) error {
	if len(list) > maxPeers {
		return fmt.Errorf("at most %d peers", maxPeers)
	}
	next := map[string]netip.Addr{}
	nextByAddr := map[netip.Addr]string{}
	rawKeys := map[string][]byte{}
	bcast := netip.Addr{}
	{
		b := s.prefix.Addr().As4()
		host := 32 - s.prefix.Bits()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v |= (1 << host) - 1
		bcast = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	for _, p := range list {
		raw, err := parseKey(p.PublicKey)
		if err != nil {
			return fmt.Errorf("peer %q: %v", p.PublicKey, err)
		}
		key := keyBase64(raw)
		a, err := netip.ParseAddr(p.Address)
		if err != nil || !a.Is4() || !s.prefix.Contains(a) || a == s.addr || a == s.prefix.Addr() || a == bcast {
			return fmt.Errorf("peer %s: address %q is not a peer address in %s", key, p.Address, s.prefix)
		}
		if _, dup := next[key]; dup {
			return fmt.Errorf("peer %s listed twice", key)
		}
		if _, dup := nextByAddr[a]; dup {
			return fmt.Errorf("address %s given to two peers", a)
		}
		next[key] = a
		nextByAddr[a] = key
		rawKeys[key] = raw
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for key := range s.peers {
		if _, keep := next[key]; !keep {
			raw, _ := parseKey(key)
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", keyHex(raw))
		}
	}
	for key, a := range next {
		if old, ok := s.peers[key]; ok && old == a {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\nallowed_ip=%s/32\n", keyHex(rawKeys[key]), a)
	}
	if b.Len() > 0 {
		if err := s.dev.IpcSet(b.String()); err != nil {
			return fmt.Errorf("applying peers: %v", err)
		}
	}
	s.peers = next
	s.byAddr = nextByAddr
	// A connection lives only as long as its key keeps its address.
	for c, key := range s.conns {
		if a, ok := next[key]; !ok || nextByAddr[a] != key {
			_ = c.Close()
			delete(s.conns, c)
		}
	}
	return nil
}

// setForwards points the declared guest ports at new loopback forwards (the same set of ports:
// what the tunnel admits never changes while the access point runs).
func (s *server) setForwards(list []forwardSpec) error {
	next := map[uint16]string{}
	for _, f := range list {
		fw, err := parseForward(fmt.Sprintf("%d=%s", f.GuestPort, f.Target))
		if err != nil {
			return err
		}
		if _, declared := s.filter.ports[fw.guestPort]; !declared {
			return fmt.Errorf("guest port %d is not a declared port of this access point", fw.guestPort)
		}
		next[fw.guestPort] = fw.target
	}
	if len(next) != len(s.filter.ports) {
		return fmt.Errorf("expected a forward for each of the %d declared ports", len(s.filter.ports))
	}
	s.mu.Lock()
	s.targets = next
	s.mu.Unlock()
	return nil
}

func keyBase64(raw []byte) string { return hexToBase64(keyHex(raw)) }

func (s *server) status() response {
	uapi, err := s.dev.IpcGet()
	if err != nil {
		return response{Error: err.Error()}
	}
	s.mu.Lock()
	addrs := make(map[string]netip.Addr, len(s.peers))
	for k, v := range s.peers {
		addrs[k] = v
	}
	conns := len(s.conns)
	forwards := make([]forwardSpec, 0, len(s.targets))
	for p, t := range s.targets {
		forwards = append(forwards, forwardSpec{GuestPort: int(p), Target: t})
	}
	s.mu.Unlock()
	sort.Slice(forwards, func(i, j int) bool { return forwards[i].GuestPort < forwards[j].GuestPort })
	var peers []peerStatus
	var cur *peerStatus
	var hsSec, hsNsec int64
	flush := func() {
		if cur != nil {
			if hsSec > 0 {
				cur.LastHandshakeMs = hsSec*1000 + hsNsec/1_000_000
			}
			peers = append(peers, *cur)
		}
		cur, hsSec, hsNsec = nil, 0, 0
	}
	for _, line := range strings.Split(uapi, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			key := hexToBase64(v)
			cur = &peerStatus{PublicKey: key, Address: addrs[key].String()}
		case "last_handshake_time_sec":
			hsSec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			hsNsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, _ = strconv.ParseInt(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	flush()
	sort.Slice(peers, func(i, j int) bool { return peers[i].Address < peers[j].Address })
	ports := make([]int, 0, len(s.forwards))
	for _, f := range s.forwards {
		ports = append(ports, int(f.guestPort))
	}
	if peers == nil {
		peers = []peerStatus{}
	}
	return response{OK: true, PublicKey: s.publicKey, ListenPort: s.listenPort, Address: s.addr.String(), Ports: ports, Peers: peers, Forwards: forwards, Connections: conns, Dropped: s.filter.dropped.Load()}
}
