import { TargetError } from "./target";

/**
 * The one network policy for every machine the product starts on the local QEMU host (recovery,
 * boot verification, drills). Nothing else builds `-netdev` arguments.
 *
 * A guest is hostile. QEMU's user-mode network (slirp) maps 10.0.2.2 to the host's own loopback, so
 * an unrestricted guest reaches every service bound to 127.0.0.1 (the database, Temporal, the
 * object store, the API, Redis) and every other machine's forwarded ports. With `restrict=on` slirp
 * drops every connection the guest opens (TCP, UDP including DNS, to any address) except the
 * built-in DHCP answer; the only way in is a host forward, and host forwards are bound to
 * 127.0.0.1 only, one per port the machine declares.
 *
 * Outbound internet on this target would need `restrict=off`, which gives the host away again
 * (10.0.2.2 = the host's loopback), so it is refused here: see LOCAL_INTERNET_UNSUPPORTED.
 */

export interface GuestForward {
  /** TCP port inside the guest. */
  guestPort: number;
  /** TCP port on the host's 127.0.0.1 that reaches it (0 until one has been chosen). */
  hostPort: number;
}

/** What a recovered machine is reachable on when the launch names nothing: SSH and RDP. */
export const DEFAULT_GUEST_PORTS: readonly number[] = [22, 3389];
/** No machine needs more forwards than this; each one is a listening socket on the host. */
export const MAX_GUEST_PORTS = 16;
/** The only address host forwards listen on. */
export const FORWARD_BIND_ADDRESS = "127.0.0.1";

/** Why the local target refuses outbound internet (the API says the same as BAD_USER_INPUT). */
export const LOCAL_INTERNET_UNSUPPORTED =
  "Outbound internet is not available on the LOCAL target: QEMU's user network can only offer it by exposing the host itself to the guest. Recover to AWS for a machine with internet access.";

/** The declared guest ports, checked: 1–65535, no duplicates, at most MAX_GUEST_PORTS. */
export function guestPorts(ports?: readonly number[]): number[] {
  const list = [...(ports ?? DEFAULT_GUEST_PORTS)];
  if (list.length > MAX_GUEST_PORTS) throw new TargetError(`at most ${MAX_GUEST_PORTS} guest ports can be forwarded, got ${list.length}`, false, "INVALID_PORTS");
  for (const p of list) {
    if (!Number.isInteger(p) || p < 1 || p > 65_535) throw new TargetError(`invalid guest port ${String(p)}`, false, "INVALID_PORTS");
  }
  if (new Set(list).size !== list.length) throw new TargetError(`duplicate guest port in ${list.join(",")}`, false, "INVALID_PORTS");
  return list;
}

/** The `-netdev`/`-device` arguments: restricted user networking with loopback-only host forwards. */
export function qemuNetworkArgs(forwards: readonly GuestForward[]): string[] {
  const rules = forwards.map((f) => {
    if (!Number.isInteger(f.hostPort) || f.hostPort < 1 || f.hostPort > 65_535) throw new TargetError(`no host port chosen for guest port ${f.guestPort}`, false, "INVALID_PORTS");
    return `hostfwd=tcp:${FORWARD_BIND_ADDRESS}:${f.hostPort}-:${f.guestPort}`;
  });
  // romfile= (no iPXE option ROM): the guest cannot network-boot anyway, and a disk that does not
  // boot then ends at "No bootable device" at once, which the firmware log records.
  return ["-netdev", ["user", "id=n0", "restrict=on", "ipv6=off", ...rules].join(","), "-device", "e1000,netdev=n0,romfile="];
}
