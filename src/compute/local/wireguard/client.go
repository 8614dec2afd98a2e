package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// wgConf is what the client needs from a wg-quick .conf.
type wgConf struct {
	privateKey []byte
	addresses  []netip.Addr
	peerKey    []byte
	presharedK []byte
	endpoint   string
	allowedIPs []netip.Prefix
	keepalive  int
}

func parseConf(text string) (*wgConf, error) {
	c := &wgConf{}
	section := ""
	peers := 0
	for n, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.ToLower(strings.Trim(line, "[]"))
			if section == "peer" {
				peers++
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: expected Key = Value", n+1)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		var err error
		switch section + "." + k {
		case "interface.privatekey":
			c.privateKey, err = parseKey(v)
		case "interface.address":
			for _, a := range strings.Split(v, ",") {
				p, perr := netip.ParsePrefix(strings.TrimSpace(a))
				if perr != nil {
					var addr netip.Addr
					addr, perr = netip.ParseAddr(strings.TrimSpace(a))
					p = netip.PrefixFrom(addr, addr.BitLen())
				}
				if perr != nil {
					return nil, fmt.Errorf("line %d: bad Address %q", n+1, a)
				}
				c.addresses = append(c.addresses, p.Addr())
			}
		case "peer.publickey":
			c.peerKey, err = parseKey(v)
		case "peer.presharedkey":
			c.presharedK, err = parseKey(v)
		case "peer.endpoint":
			c.endpoint = v
		case "peer.allowedips":
			for _, a := range strings.Split(v, ",") {
				p, perr := netip.ParsePrefix(strings.TrimSpace(a))
				if perr != nil {
					return nil, fmt.Errorf("line %d: bad AllowedIPs %q", n+1, a)
				}
				c.allowedIPs = append(c.allowedIPs, p)
			}
		case "peer.persistentkeepalive":
			c.keepalive, err = strconv.Atoi(v)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %v", n+1, k, err)
		}
	}
	switch {
	case c.privateKey == nil:
		return nil, fmt.Errorf("no [Interface] PrivateKey")
	case len(c.addresses) == 0:
		return nil, fmt.Errorf("no [Interface] Address")
	case peers != 1:
		return nil, fmt.Errorf("expected exactly one [Peer], found %d", peers)
	case c.peerKey == nil || c.endpoint == "" || len(c.allowedIPs) == 0:
		return nil, fmt.Errorf("[Peer] needs PublicKey, Endpoint and AllowedIPs")
	}
	return c, nil
}

type clientForward struct {
	listen string
	target netip.AddrPort
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	config := fs.String("config", "", "wg-quick .conf file")
	dialTimeout := fs.Duration("dial-timeout", 5*time.Second, "how long a connection through the tunnel may take to open")
	exitOnEOF := fs.Bool("exit-on-stdin-eof", false, "exit when stdin closes (a parent that dies takes the client with it)")
	var fwdFlags multiFlag
	fs.Var(&fwdFlags, "forward", "127.0.0.1:LOCAL=TUNNELADDR:PORT (repeatable; LOCAL 0 = any free port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	text, err := os.ReadFile(*config)
	if err != nil {
		return err
	}
	c, err := parseConf(string(text))
	if err != nil {
		return fmt.Errorf("%s: %v", *config, err)
	}
	var forwards []clientForward
	for _, f := range fwdFlags {
		l, t, ok := strings.Cut(f, "=")
		ap, err := netip.ParseAddrPort(t)
		if !ok || err != nil {
			return fmt.Errorf("invalid --forward %q (expected 127.0.0.1:LOCAL=TUNNELADDR:PORT)", f)
		}
		forwards = append(forwards, clientForward{listen: l, target: ap})
	}
	resolved, err := net.ResolveUDPAddr("udp", c.endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %s: %v", c.endpoint, err)
	}
	endpoint := netip.AddrPortFrom(resolved.AddrPort().Addr().Unmap(), resolved.AddrPort().Port())
	local := netip.IPv4Unspecified()
	if endpoint.Addr().Is6() {
		local = netip.IPv6Unspecified()
	}

	tunDev, tnet, err := netstack.CreateNetTUN(c.addresses, nil, tunnelMTU)
	if err != nil {
		return err
	}
	dev := device.NewDevice(tunDev, &addrBind{addr: netip.AddrPortFrom(local, 0)}, device.NewLogger(device.LogLevelError, "reclo-wg client: "))
	defer dev.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\npublic_key=%s\nendpoint=%s\n", keyHex(c.privateKey), keyHex(c.peerKey), endpoint)
	if c.presharedK != nil {
		fmt.Fprintf(&b, "preshared_key=%s\n", keyHex(c.presharedK))
	}
	if c.keepalive > 0 {
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", c.keepalive)
	}
	for _, p := range c.allowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	if err := dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("configuring the device: %v", err)
	}
	if err := dev.Up(); err != nil {
		return err
	}

	type readyForward struct {
		Listen string `json:"listen"`
		Target string `json:"target"`
	}
	var ready []readyForward
	for _, f := range forwards {
		l, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("listening on %s: %v", f.listen, err)
		}
		defer l.Close()
		ready = append(ready, readyForward{Listen: l.Addr().String(), Target: f.target.String()})
		go func(l net.Listener, target netip.AddrPort) {
			for {
				local, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), *dialTimeout)
					defer cancel()
					remote, err := tnet.DialContextTCPAddrPort(ctx, target)
					if err != nil {
						fmt.Fprintf(os.Stderr, "reclo-wg client: %s: %v\n", target, err)
						_ = local.Close()
						return
					}
					pipe(local, remote)
				}()
			}
		}(l, f.target)
	}
	out, _ := json.Marshal(map[string]any{"forwards": ready})
	fmt.Printf("READY %s\n", out)

	done := make(chan struct{})
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			close(done)
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sigs:
	case <-done:
	}
	return nil
}
