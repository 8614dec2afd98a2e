// reclo-wg: the userspace WireGuard helper of ReClo's local target (issue 15).
//
// One process per recovered machine: `reclo-wg server` is that machine's access point. It runs
// wireguard-go over a gVisor netstack (no kernel module, no TUN device, no root), so the tunnel
// is a private network of its own: the netstack holds the machine's tunnel address (.1 of the
// access point's /24) and, for each declared guest port, a TCP listener there that proxies to the
// QEMU loopback forward of that port (127.0.0.1:<hostPort>). Nothing else answers: a packet filter
// in front of the netstack drops everything that is not TCP to a declared port of the tunnel
// address (no ICMP, no UDP, no other port, no other destination), and nothing is routed anywhere.
//
// Started as root (the worker), it opens its UDP port, control socket and pid file, then drops to
// --uid/--gid (an unprivileged user of its own) before it handles a packet.
//
// The private key comes on stdin (one base64 line), never in argv or the environment. Peers are
// set through the control socket (unix, 0600, in the instance directory), one JSON request per
// connection, one JSON answer:
//
//	{"cmd":"set-peers","peers":[{"publicKey":"<base64>","address":"100.96.3.2"}]}  full list
//	{"cmd":"status"}   {"ok":true,"publicKey":…,"listenPort":…,"peers":[{publicKey,lastHandshakeMs,rxBytes,txBytes}]}
//	{"cmd":"stop"}     answers, then exits
//
// `reclo-wg client` is a reference client for tests: it reads a wg-quick .conf and forwards local
// TCP listeners through the tunnel (--forward 127.0.0.1:LOCAL=100.96.3.1:22), then prints a READY line.
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  reclo-wg server --address 100.96.3.1/24 --listen 0.0.0.0 --port-range 51820-51919 [--prefer-port N]
                  --forward GUESTPORT=127.0.0.1:HOSTPORT ... --control SOCKET --pid-file FILE [--uid N --gid N]
                  (private key: one base64 line on stdin)
  reclo-wg client --config FILE.conf --forward 127.0.0.1:LOCAL=TUNNELADDR:PORT ... [--dial-timeout 5s]
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "reclo-wg: %v\n", err)
		os.Exit(1)
	}
}
