import { WG_KEY_PATTERN, wgPublicKeyOf } from "./wireguard-keys";
import {
  AuthorizeSecurityGroupEgressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupRulesCommand,
  DescribeSecurityGroupsCommand,
  GetConsoleOutputCommand,
  RevokeSecurityGroupEgressCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
  type EC2Client,
  type Filter,
  type Instance,
  type IpPermission,
  type SecurityGroup,
  type Tag,
} from "@aws-sdk/client-ec2";
import { ec2Call, hasCode } from "./aws-errors";
import { guestPorts } from "./guest-network";
import { TargetError, type AccessPeer, type AccessPointInfo, type AccessPointSpec, type AccessPointStatus, type AccessPointTarget } from "./target";

/**
 * Private access on AWS (issue 15): one small WireGuard gateway instance per recovered machine.
 *
 * Why a gateway and not AWS Client VPN: Client VPN costs ~$0.10/h per subnet association plus
 * $0.05 per connection-hour (≈ $73/month for one idle endpoint), takes minutes to become available,
 * and authenticates users with certificates (a CA and one client certificate per device to issue
 * and revoke), none of which fits "one access point per recovered machine, a key per device,
 * revoked within seconds". A t4g.nano gateway costs ≈ $0.004/h (+ its public IPv4 address,
 * $0.005/h), is ready in about a minute, speaks plain WireGuard (the same .conf and key handling as
 * the local target), and lives and dies with the machine it serves.
 *
 * The gateway (AWS_GATEWAY_AMI_ID, in AWS_PUBLIC_SUBNET_ID with a public address) admits UDP on its
 * WireGuard port only (its own security group, `reclo-ap-<recovery>`); inside, iptables DNATs TCP to
 * the tunnel address `.1` on the declared ports to the recovered instance's private address, and
 * drops everything else (no forwarding anywhere else, nothing on the gateway itself answers through
 * the tunnel, no NAT to anything but that instance on those ports). The recovered instance's
 * security group admits only this gateway's group on the declared ports.
 *
 * Peers change without a restart: setAccessPeers writes the full peer list into the gateway's own
 * instance tags (PEER_SLOTS tags `reclo-peers-<n>`, each "octet=publicKey …", always all of them,
 * in one CreateTags call — no read-modify-write, so a revoked key cannot survive a stale read); the
 * gateway reads its tags from the instance metadata service (InstanceMetadataTags, IMDSv2, hop
 * limit 1) every PEER_POLL_SECONDS and applies them with `wg syncconf`. The gateway needs no IAM
 * role and no credentials.
 *
 * The server private key: it is in the gateway's user data (base64 in RunInstances, readable by
 * account principals allowed ec2:DescribeInstanceAttribute, and from inside the gateway through
 * IMDS). The gateway runs nothing else (no SSH key, no inbound but WireGuard, IMDSv2 with hop limit
 * 1), so the exposure is to the AWS account's own operators. Not chosen, to be done: a boot-time
 * key exchange (the gateway publishes a one-time public key on its console, the target seals the
 * WireGuard key to it in a tag).
 *
 * Idempotent: the gateway's RunInstances carries ClientToken `<recovery>-ap`; groups are named
 * after the recovery and reused; everything is tagged `reclo:recovery` so discardLaunch finds it.
 */

export interface AwsGatewayOptions {
  /** AMI of the gateway (Debian 12 or Amazon Linux 2023, arm64 for t4g): wireguard-tools is installed at boot when missing. */
  amiId: string;
  instanceType: string;
  /** Subnet with a route to an internet gateway: the gateway gets a public address there. */
  publicSubnetId: string;
  /** UDP port the gateway listens on (each gateway has its own public address). */
  port: number;
}

/** Peers one access point admits on AWS: PEER_SLOTS tags of PEERS_PER_SLOT entries (EC2 allows 50 tags per resource). */
const PEER_SLOTS = 8;
const PEERS_PER_SLOT = 5;
export const MAX_AWS_ACCESS_PEERS = PEER_SLOTS * PEERS_PER_SLOT;
/** How often the gateway reads its peer tags. */
export const PEER_POLL_SECONDS = 5;
/** The gateway prints this on its console once WireGuard and the firewall are up. */
export const GATEWAY_READY_MARKER = "reclo-access-point: ready";

export const TAG_RECOVERY = "reclo:recovery";
export const TAG_ROLE = "reclo:role";
export const ROLE_ACCESS_POINT = "access-point";
/** On the gateway and its group: the recovered instance it serves. */
export const TAG_ACCESS_POINT_FOR = "reclo:access-point-for";
/** On the gateway's group: the recovered instance's group (which admits it). */
export const TAG_INSTANCE_SG = "reclo:instance-sg";
const TAG_TUNNEL_SUBNET = "reclo:tunnel-subnet";
/** On the gateway: the UDP port it listens on (an adopted gateway may predate a configuration change). */
const TAG_WG_PORT = "reclo:wireguard-port";
const PEER_SLOT_PREFIX = "reclo-peers-";

const LIVE_STATES = ["pending", "running", "stopping", "stopped"];

/** The WireGuard public key of a private key (both base64 of 32 raw bytes). */
export function wgPublicKey(privateKey: string): string {
  const key = wgPublicKeyOf(privateKey);
  if (!key) throw new TargetError("access point private key is not a WireGuard key (base64 of 32 bytes)", false, "INVALID_ACCESS_POINT");
  return key;
}

/** The /24 tunnel subnet's first three octets ("100.96.3"), checked against 100.96.0.0/12. */
function tunnelPrefix(subnet: string): string {
  const m = /^100\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || Number(m[1]) < 96 || Number(m[1]) > 111 || Number(m[2]) > 255) throw new TargetError(`tunnel subnet ${subnet} is not a /24 in 100.96.0.0/12`, false, "INVALID_ACCESS_POINT");
  return `100.${m[1]}.${m[2]}`;
}

/** The peers as the gateway's tags: every slot, empty ones included (so one CreateTags replaces the whole list). */
export function peerTags(tunnelSubnet: string, peers: AccessPeer[]): Tag[] {
  const prefix = tunnelPrefix(tunnelSubnet);
  if (peers.length > MAX_AWS_ACCESS_PEERS) throw new TargetError(`an AWS access point admits at most ${MAX_AWS_ACCESS_PEERS} peers, got ${peers.length}`, false, "TOO_MANY_PEERS");
  const seen = new Set<string>();
  const entries = peers.map((p) => {
    const octet = p.address.startsWith(`${prefix}.`) ? Number(p.address.slice(prefix.length + 1)) : NaN;
    if (!Number.isInteger(octet) || octet < 2 || octet > 254 || p.address !== `${prefix}.${octet}`) throw new TargetError(`peer address ${p.address} is not a peer address of ${tunnelSubnet}`, false, "INVALID_PEER");
    if (!WG_KEY_PATTERN.test(p.publicKey)) throw new TargetError(`peer ${p.address}: public key is not a WireGuard key`, false, "INVALID_PEER");
    if (seen.has(p.address) || seen.has(p.publicKey)) throw new TargetError(`peer ${p.address}: address or key given twice`, false, "INVALID_PEER");
    seen.add(p.address).add(p.publicKey);
    return `${octet}=${p.publicKey}`;
  });
  return Array.from({ length: PEER_SLOTS }, (_, n) => ({ Key: `${PEER_SLOT_PREFIX}${n}`, Value: entries.slice(n * PEERS_PER_SLOT, (n + 1) * PEERS_PER_SLOT).join(" ") }));
}

/** The peers a gateway's tags admit. */
export function peersFromTags(tags: Tag[] | undefined): AccessPeer[] {
  const prefix = tagValue(tags, TAG_TUNNEL_SUBNET)?.replace(/\.0\/24$/, "");
  if (!prefix) return [];
  return (tags ?? [])
    .filter((t) => t.Key?.startsWith(PEER_SLOT_PREFIX))
    .sort((a, b) => Number(a.Key!.slice(PEER_SLOT_PREFIX.length)) - Number(b.Key!.slice(PEER_SLOT_PREFIX.length)))
    .flatMap((t) => (t.Value ?? "").split(" ").filter(Boolean))
    .map((entry) => {
      const at = entry.indexOf("=");
      return { publicKey: entry.slice(at + 1), address: `${prefix}.${entry.slice(0, at)}` };
    });
}

/**
 * The gateway's first-boot script (cloud-init runs user data as root). It installs a systemd unit
 * that, on every boot, brings up wg0 and the firewall and then polls the peer tags.
 */
export function gatewayUserData(p: { privateKey: string; port: number; tunnelAddress: string; tunnelSubnet: string; targetAddress: string; ports: number[] }): string {
  const prefix = tunnelPrefix(p.tunnelSubnet);
  if (!WG_KEY_PATTERN.test(p.privateKey)) throw new TargetError("access point private key is not a WireGuard key", false, "INVALID_ACCESS_POINT");
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(p.targetAddress)) throw new TargetError(`bad private address ${p.targetAddress}`, false, "INVALID_ACCESS_POINT");
  const ports = guestPorts(p.ports).join(" ");
  const up = `#!/bin/bash
# ReClo access point: WireGuard in, TCP to one machine's declared ports out, nothing else.
set -euo pipefail
PORT=${p.port}
TUN=${p.tunnelAddress}
SUBNET=${p.tunnelSubnet}
PREFIX=${prefix}
TARGET=${p.targetAddress}
PORTS="${ports}"
EXT=$(ip -4 route show default | awk '{print $5; exit}')
ip link show wg0 >/dev/null 2>&1 || ip link add wg0 type wireguard
wg set wg0 listen-port "$PORT" private-key /etc/reclo/wg.key
ip address replace "$TUN/24" dev wg0
ip link set wg0 up
sysctl -qw net.ipv4.ip_forward=1
for t in iptables ip6tables; do $t -P FORWARD DROP; $t -F FORWARD; done
iptables -t nat -F PREROUTING
iptables -t nat -F POSTROUTING
iptables -F INPUT
iptables -F OUTPUT
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
for port in $PORTS; do
  iptables -t nat -A PREROUTING -i wg0 -d "$TUN" -p tcp --dport "$port" -j DNAT --to-destination "$TARGET"
  iptables -A FORWARD -i wg0 -o "$EXT" -s "$SUBNET" -d "$TARGET" -p tcp --dport "$port" -m conntrack --ctstate NEW -j ACCEPT
  iptables -t nat -A POSTROUTING -o "$EXT" -s "$SUBNET" -d "$TARGET" -p tcp --dport "$port" -j MASQUERADE
done
# Nothing on the gateway answers through the tunnel.
iptables -A INPUT -i wg0 -j DROP
# The gateway itself talks only to the instance metadata service, DHCP, time sync and its WireGuard peers.
iptables -A OUTPUT -o lo -j ACCEPT
iptables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A OUTPUT -d 169.254.169.254 -p tcp --dport 80 -j ACCEPT
# Its own DHCP lease renewals and the Amazon Time Sync Service.
iptables -A OUTPUT -o "$EXT" -p udp --sport 68 --dport 67 -j ACCEPT
iptables -A OUTPUT -d 169.254.169.123 -p udp --dport 123 -j ACCEPT
iptables -A OUTPUT -o "$EXT" -p udp --sport "$PORT" -j ACCEPT
iptables -A OUTPUT -o wg0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -P OUTPUT DROP
echo "${GATEWAY_READY_MARKER} $(wg show wg0 public-key)" > /dev/console
exec /usr/local/sbin/reclo-peers
`;
  const peers = `#!/bin/bash
# Applies the peer list from this instance's tags (written by the ReClo worker) every ${PEER_POLL_SECONDS} s.
# A failed or partial read keeps the current peers rather than applying a partial list.
set -uo pipefail
umask 077
while true; do
  if /usr/local/sbin/reclo-peers-conf > /etc/reclo/peers.conf.new; then wg syncconf wg0 /etc/reclo/peers.conf.new; fi
  sleep ${PEER_POLL_SECONDS}
done
`;
  const conf = gatewayPeersConfScript({ prefix, port: p.port });
  const unit = `[Unit]
Description=ReClo access point (WireGuard)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/sbin/reclo-ap-up
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`;
  return `#!/bin/bash
set -euo pipefail
umask 077
if ! command -v wg >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
  if command -v dnf >/dev/null 2>&1; then dnf -y install wireguard-tools iptables-nft
  else export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -yq wireguard-tools iptables; fi
fi
mkdir -p /etc/reclo
chmod 700 /etc/reclo
printf '%s\\n' '${p.privateKey}' > /etc/reclo/wg.key
cat > /usr/local/sbin/reclo-ap-up <<'RECLO_UP'
${up}RECLO_UP
cat > /usr/local/sbin/reclo-peers <<'RECLO_PEERS'
${peers}RECLO_PEERS
cat > /usr/local/sbin/reclo-peers-conf <<'RECLO_CONF'
${conf}RECLO_CONF
chmod 700 /usr/local/sbin/reclo-ap-up /usr/local/sbin/reclo-peers /usr/local/sbin/reclo-peers-conf
cat > /etc/systemd/system/reclo-access-point.service <<'RECLO_UNIT'
${unit}RECLO_UNIT
systemctl daemon-reload
systemctl enable --now reclo-access-point.service
`;
}

/**
 * The gateway's peer reader: prints the wg config (interface + one [Peer] per valid tag entry,
 * AllowedIPs = that one tunnel address) read from IMDSv2's instance tags; exits non-zero when any
 * read fails. RECLO_IMDS and RECLO_KEY_FILE exist for its test (a local metadata server).
 */
export function gatewayPeersConfScript(p: { prefix: string; port: number }): string {
  return `#!/bin/bash
set -fuo pipefail
umask 077
PREFIX=${p.prefix}
MD=\${RECLO_IMDS:-http://169.254.169.254/latest}
KEY=$(cat "\${RECLO_KEY_FILE:-/etc/reclo/wg.key}") || exit 1
T=$(curl -sf -m 3 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$MD/api/token") || exit 1
KEYS=$(curl -sf -m 3 -H "X-aws-ec2-metadata-token: $T" "$MD/meta-data/tags/instance/") || exit 1
printf '[Interface]\\nListenPort = %s\\nPrivateKey = %s\\n' ${p.port} "$KEY"
for k in $KEYS; do
  case "$k" in ${PEER_SLOT_PREFIX}[0-9]) ;; *) continue ;; esac
  V=$(curl -sf -m 3 -H "X-aws-ec2-metadata-token: $T" "$MD/meta-data/tags/instance/$k") || exit 1
  for e in $V; do
    o=\${e%%=*}
    pub=\${e#*=}
    [[ "$o" =~ ^[1-9][0-9]{0,2}$ ]] && (( o >= 2 && o <= 254 )) && [[ "$pub" =~ ^[A-Za-z0-9+/]{43}=$ ]] || continue
    printf '[Peer]\\nPublicKey = %s\\nAllowedIPs = %s.%s/32\\n' "$pub" "$PREFIX" "$o"
  done
done
`;
}

function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return (tags ?? []).find((t) => t.Key === key)?.Value;
}

function hasTag(tags: Tag[] | undefined, key: string, value: string): boolean {
  return tagValue(tags, key) === value;
}

/**
 * The group named `name` (created with `tags`, or found when an earlier attempt created it).
 * Shared by the recovered instance's group and the gateway's.
 */
export async function ensureGroup(ec2: EC2Client, vpcId: string | undefined, name: string, description: string, tags: Tag[]): Promise<string> {
  try {
    const out = await ec2Call(() =>
      ec2.send(new CreateSecurityGroupCommand({ GroupName: name, Description: description, ...(vpcId ? { VpcId: vpcId } : {}), TagSpecifications: [{ ResourceType: "security-group", Tags: tags }] })),
    );
    if (!out?.GroupId) throw new TargetError(`CreateSecurityGroup ${name} returned no group id`, true);
    return out.GroupId;
  } catch (err) {
    if (!hasCode(err, "InvalidGroup.Duplicate")) throw err;
  }
  const filters: Filter[] = [{ Name: "group-name", Values: [name] }];
  if (vpcId) filters.push({ Name: "vpc-id", Values: [vpcId] });
  const out = await ec2Call(() => ec2.send(new DescribeSecurityGroupsCommand({ Filters: filters })));
  const existing = (out?.SecurityGroups ?? []).find((g) => g.GroupName === name && g.GroupId);
  if (!existing?.GroupId) throw new TargetError(`security group ${name} exists but could not be found`, true, "InvalidGroup.Duplicate");
  return existing.GroupId;
}

/** Adds one rule; an identical rule already in place (a retry) is fine. */
async function authorize(ec2: EC2Client, direction: "ingress" | "egress", groupId: string, permission: IpPermission): Promise<void> {
  try {
    if (direction === "ingress") await ec2Call(() => ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission] })));
    else await ec2Call(() => ec2.send(new AuthorizeSecurityGroupEgressCommand({ GroupId: groupId, IpPermissions: [permission] })));
  } catch (err) {
    if (!hasCode(err, "InvalidPermission.Duplicate")) throw err;
  }
}

/** Deletes a group; gone is done; still in use (an instance shutting down) is retryable. */
export async function deleteGroup(ec2: EC2Client, groupId: string): Promise<boolean> {
  try {
    await ec2Call(() => ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId })));
    return true;
  } catch (err) {
    if (hasCode(err, "InvalidGroup.NotFound")) return false;
    if (hasCode(err, "DependencyViolation")) {
      throw new TargetError(`security group ${groupId} is still in use (instance still shutting down?): ${(err as TargetError).message}`, true, "DependencyViolation");
    }
    throw err;
  }
}

/** Groups carrying all of `tags` (EC2 filters, checked again on the answer). */
export async function groupsTagged(ec2: EC2Client, tags: Record<string, string>): Promise<SecurityGroup[]> {
  const out = await ec2Call(() => ec2.send(new DescribeSecurityGroupsCommand({ Filters: Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })) })));
  return (out?.SecurityGroups ?? []).filter((g) => g.GroupId && Object.entries(tags).every(([k, v]) => hasTag(g.Tags, k, v)));
}

/** Live (not terminated or shutting down) instances carrying all of `tags`. */
export async function instancesTagged(ec2: EC2Client, tags: Record<string, string>): Promise<Instance[]> {
  const filters: Filter[] = [...Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] })), { Name: "instance-state-name", Values: LIVE_STATES }];
  const found: Instance[] = [];
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const out = await ec2Call(() => ec2.send(new DescribeInstancesCommand({ Filters: filters, ...(token ? { NextToken: token } : {}) })));
    for (const i of (out?.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      if (i.InstanceId && LIVE_STATES.includes(i.State?.Name ?? "") && Object.entries(tags).every(([k, v]) => hasTag(i.Tags, k, v))) found.push(i);
    }
    nextToken = out?.NextToken || undefined;
  } while (nextToken);
  return found;
}

/** Terminates the gateways serving `instanceId` (also terminateInstance's part); what it terminated. */
export async function terminateGateways(ec2: EC2Client, instanceId: string): Promise<string[]> {
  const ids = (await instancesTagged(ec2, { [TAG_ACCESS_POINT_FOR]: instanceId, [TAG_ROLE]: ROLE_ACCESS_POINT })).map((i) => i.InstanceId!);
  if (!ids.length) return [];
  try {
    await ec2Call(() => ec2.send(new TerminateInstancesCommand({ InstanceIds: ids })));
  } catch (err) {
    if (!hasCode(err, "InvalidInstanceID.NotFound")) throw err;
  }
  return ids.map((id) => `terminated access point gateway ${id}`);
}

export class AwsAccessPoints implements AccessPointTarget {
  constructor(
    private readonly ec2: EC2Client,
    private readonly gateway: AwsGatewayOptions,
    private readonly vpcId: string | undefined,
  ) {}

  async openAccessPoint(spec: AccessPointSpec): Promise<AccessPointInfo> {
    const ports = guestPorts(spec.ports);
    const prefix = tunnelPrefix(spec.tunnelSubnet);
    if (spec.tunnelAddress !== `${prefix}.1`) throw new TargetError(`tunnel address ${spec.tunnelAddress} is not ${prefix}.1`, false, "INVALID_ACCESS_POINT");
    const publicKey = wgPublicKey(spec.privateKey);
    const initialPeers = peerTags(spec.tunnelSubnet, spec.peers);

    const machine = await this.recoveredInstance(spec.instanceId);
    const instanceSg = (machine.SecurityGroups ?? []).find((g) => g.GroupName === `reclo-${spec.idempotencyKey}`)?.GroupId;
    if (!instanceSg) throw new TargetError(`instance ${spec.instanceId} is not in recovery ${spec.idempotencyKey}'s security group`, false, "INVALID_ACCESS_POINT");

    // The gateway's group: WireGuard in from anywhere, TCP out to the machine's declared ports only.
    const gatewaySg = await ensureGroup(this.ec2, this.vpcId, `reclo-ap-${spec.idempotencyKey}`, `ReClo access point of recovery ${spec.idempotencyKey}`, [
      { Key: TAG_RECOVERY, Value: spec.idempotencyKey },
      { Key: TAG_ROLE, Value: ROLE_ACCESS_POINT },
      { Key: TAG_ACCESS_POINT_FOR, Value: spec.instanceId },
      { Key: TAG_INSTANCE_SG, Value: instanceSg },
    ]);
    await this.revokeAllowAllEgress(gatewaySg);
    await authorize(this.ec2, "ingress", gatewaySg, { IpProtocol: "udp", FromPort: this.gateway.port, ToPort: this.gateway.port, IpRanges: [{ CidrIp: "0.0.0.0/0", Description: "WireGuard" }] });
    for (const port of ports) {
      await authorize(this.ec2, "egress", gatewaySg, { IpProtocol: "tcp", FromPort: port, ToPort: port, IpRanges: [{ CidrIp: `${machine.PrivateIpAddress}/32`, Description: "to the recovered machine" }] });
    }
    // Package installation at first boot (when the AMI lacks wireguard-tools); the gateway's own
    // iptables drops all other outbound traffic once WireGuard is up.
    for (const port of [80, 443]) {
      await authorize(this.ec2, "egress", gatewaySg, { IpProtocol: "tcp", FromPort: port, ToPort: port, IpRanges: [{ CidrIp: "0.0.0.0/0", Description: "gateway package install" }] });
    }
    // The machine admits the gateway's group on its declared ports, and nothing else.
    for (const port of ports) {
      await authorize(this.ec2, "ingress", instanceSg, { IpProtocol: "tcp", FromPort: port, ToPort: port, UserIdGroupPairs: [{ GroupId: gatewaySg, Description: "ReClo access point" }] });
    }

    const launched = await this.ensureGateway(spec, ports, machine.PrivateIpAddress!, gatewaySg);
    const gatewayId = launched.InstanceId!;
    try {
      await ec2Call(() => this.ec2.send(new CreateTagsCommand({ Resources: [gatewayId], Tags: initialPeers })));
    } catch (err) {
      // EC2's eventual consistency right after RunInstances.
      if (hasCode(err, "InvalidInstanceID.NotFound")) throw new TargetError(`access point gateway ${gatewayId} is not visible yet`, true, "ACCESS_POINT_PENDING");
      throw err;
    }
    const address = launched.PublicIpAddress ?? (await this.publicAddress(gatewayId));
    if (!address) throw new TargetError(`access point gateway ${gatewayId} has no public address yet`, true, "ACCESS_POINT_PENDING");
    const port = Number(tagValue(launched.Tags, TAG_WG_PORT)) || this.gateway.port;
    return { endpoint: `${address}:${port}`, publicKey, resources: [`access point gateway ${gatewayId}`, `security group ${gatewaySg}`] };
  }

  async setAccessPeers(instanceId: string, peers: AccessPeer[]): Promise<void> {
    const gateway = await this.liveGateway(instanceId);
    if (!gateway) throw new TargetError(`instance ${instanceId} has no access point`, false, "NO_ACCESS_POINT");
    const subnet = tagValue(gateway.Tags, TAG_TUNNEL_SUBNET);
    if (!subnet) throw new TargetError(`access point gateway ${gateway.InstanceId} has no tunnel subnet tag`, false, "NO_ACCESS_POINT");
    // Every slot in one call: the whole list replaces the old one, whatever was read before.
    await ec2Call(() => this.ec2.send(new CreateTagsCommand({ Resources: [gateway.InstanceId!], Tags: peerTags(subnet, peers) })));
  }

  /**
   * The gateway runs once EC2 says so and its console shows the ready line. Handshakes and byte
   * counts stay on the gateway (it has no way to report them without credentials): 0 / unknown.
   */
  async accessPointStatus(instanceId: string): Promise<AccessPointStatus> {
    const gateway = await this.liveGateway(instanceId);
    if (!gateway) return { running: false, peers: [] };
    const peers = peersFromTags(gateway.Tags).map((p) => ({ publicKey: p.publicKey, rxBytes: 0, txBytes: 0 }));
    if (gateway.State?.Name !== "running") return { running: false, peers };
    const out = await ec2Call(() => this.ec2.send(new GetConsoleOutputCommand({ InstanceId: gateway.InstanceId!, Latest: true })));
    const console = out?.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "";
    return { running: console.includes(GATEWAY_READY_MARKER), peers };
  }

  /**
   * Terminates the gateway, takes the machine's rule for it away and deletes its group. The group
   * stays in use until the gateway's interface is gone: DependencyViolation is retryable.
   */
  async closeAccessPoint(instanceId: string): Promise<string[]> {
    const removed = await this.terminateGateways(instanceId);
    try {
      for (const group of await groupsTagged(this.ec2, { [TAG_ACCESS_POINT_FOR]: instanceId, [TAG_ROLE]: ROLE_ACCESS_POINT })) {
        const instanceSg = tagValue(group.Tags, TAG_INSTANCE_SG);
        if (instanceSg) await this.revokeReferences(instanceSg, group.GroupId!);
        if (await deleteGroup(this.ec2, group.GroupId!)) removed.push(`deleted security group ${group.GroupId}`);
      }
    } catch (err) {
      // The retry will not see the gateway terminated now: say so in the error the timeline shows.
      const e = err as TargetError;
      if (removed.length) throw new TargetError(`${removed.join("; ")}; then: ${e.message}`, e.retryable, e.code);
      throw err;
    }
    return removed;
  }

  private terminateGateways(instanceId: string): Promise<string[]> {
    return terminateGateways(this.ec2, instanceId);
  }

  private async liveGateway(instanceId: string): Promise<Instance | undefined> {
    return (await instancesTagged(this.ec2, { [TAG_ACCESS_POINT_FOR]: instanceId, [TAG_ROLE]: ROLE_ACCESS_POINT }))[0];
  }

  /** The recovered machine, running with a private address (else: retry later, or it is gone). */
  private async recoveredInstance(instanceId: string): Promise<Instance> {
    let instance: Instance | undefined;
    try {
      const out = await ec2Call(() => this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })));
      instance = (out?.Reservations ?? []).flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
    } catch (err) {
      if (!hasCode(err, "InvalidInstanceID.NotFound")) throw err;
    }
    // Not visible yet right after launch (eventual consistency), or not running yet: try again.
    if (!instance) throw new TargetError(`instance ${instanceId} is not visible yet`, true, "ACCESS_POINT_PENDING");
    const state = instance.State?.Name ?? "";
    if (["shutting-down", "terminated"].includes(state)) throw new TargetError(`instance ${instanceId} is ${state}: no access point for it`, false, "INSTANCE_GONE");
    if (!instance.PrivateIpAddress) throw new TargetError(`instance ${instanceId} has no private address yet`, true, "ACCESS_POINT_PENDING");
    return instance;
  }

  private async ensureGateway(spec: AccessPointSpec, ports: number[], targetAddress: string, groupId: string): Promise<Instance> {
    const clientToken = `${spec.idempotencyKey}-ap`;
    const userData = gatewayUserData({ privateKey: spec.privateKey, port: this.gateway.port, tunnelAddress: spec.tunnelAddress, tunnelSubnet: spec.tunnelSubnet, targetAddress, ports });
    let instance: Instance | undefined;
    try {
      const out = await ec2Call(() =>
        this.ec2.send(
          new RunInstancesCommand({
            ImageId: this.gateway.amiId,
            InstanceType: this.gateway.instanceType as _InstanceType,
            MinCount: 1,
            MaxCount: 1,
            ClientToken: clientToken,
            NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: this.gateway.publicSubnetId, Groups: [groupId], AssociatePublicIpAddress: true, DeleteOnTermination: true }],
            UserData: Buffer.from(userData, "utf8").toString("base64"),
            MetadataOptions: { HttpEndpoint: "enabled", HttpTokens: "required", HttpPutResponseHopLimit: 1, InstanceMetadataTags: "enabled" },
            TagSpecifications: [
              {
                ResourceType: "instance",
                Tags: [
                  { Key: "Name", Value: `reclo-access-point-${spec.instanceId}` },
                  { Key: TAG_RECOVERY, Value: spec.idempotencyKey },
                  { Key: TAG_ROLE, Value: ROLE_ACCESS_POINT },
                  { Key: TAG_ACCESS_POINT_FOR, Value: spec.instanceId },
                  { Key: TAG_TUNNEL_SUBNET, Value: spec.tunnelSubnet },
                  { Key: TAG_WG_PORT, Value: String(this.gateway.port) },
                ],
              },
            ],
          }),
        ),
      );
      instance = out?.Instances?.[0];
    } catch (err) {
      // Same token, other parameters (another worker's configuration): the first gateway is this one.
      if (!hasCode(err, "IdempotentParameterMismatch")) throw err;
      const out = await ec2Call(() => this.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "client-token", Values: [clientToken] }] })));
      const all = (out?.Reservations ?? []).flatMap((r) => r.Instances ?? []).filter((i) => i.InstanceId);
      instance = all.find((i) => LIVE_STATES.includes(i.State?.Name ?? "")) ?? all[0];
      if (!instance) throw new TargetError(`access point of ${spec.idempotencyKey}: EC2 reports an earlier gateway with other parameters, and it is gone`, false, "ACCESS_POINT_CLOSED");
    }
    if (!instance?.InstanceId) throw new TargetError(`RunInstances for the access point of ${spec.idempotencyKey} returned no instance`, true);
    if (!LIVE_STATES.includes(instance.State?.Name ?? "pending")) {
      throw new TargetError(`the access point of ${spec.idempotencyKey} was closed (gateway ${instance.InstanceId} ${instance.State?.Name}); a closed access point is not reopened`, false, "ACCESS_POINT_CLOSED");
    }
    return instance;
  }

  private async publicAddress(gatewayId: string): Promise<string | undefined> {
    try {
      const out = await ec2Call(() => this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [gatewayId] })));
      return (out?.Reservations ?? []).flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === gatewayId)?.PublicIpAddress;
    } catch (err) {
      if (hasCode(err, "InvalidInstanceID.NotFound")) return undefined;
      throw err;
    }
  }

  /** Removes the default allow-all egress rules (IPv4 and IPv6) of a new group, keeping the ones added here. */
  private async revokeAllowAllEgress(groupId: string): Promise<void> {
    const out = await ec2Call(() => this.ec2.send(new DescribeSecurityGroupRulesCommand({ Filters: [{ Name: "group-id", Values: [groupId] }] })));
    const ids = (out?.SecurityGroupRules ?? []).filter((r) => r.IsEgress && r.GroupId === groupId && r.IpProtocol === "-1" && r.SecurityGroupRuleId).map((r) => r.SecurityGroupRuleId!);
    if (!ids.length) return;
    try {
      await ec2Call(() => this.ec2.send(new RevokeSecurityGroupEgressCommand({ GroupId: groupId, SecurityGroupRuleIds: ids })));
    } catch (err) {
      if (!hasCode(err, "InvalidSecurityGroupRuleId.NotFound")) throw err;
    }
  }

  /** Revokes the machine group's rules that admit `referencedGroup` (so that group can be deleted). */
  private async revokeReferences(groupId: string, referencedGroup: string): Promise<void> {
    let rules;
    try {
      rules = await ec2Call(() => this.ec2.send(new DescribeSecurityGroupRulesCommand({ Filters: [{ Name: "group-id", Values: [groupId] }] })));
    } catch (err) {
      if (hasCode(err, "InvalidGroup.NotFound")) return;
      throw err;
    }
    const ids = (rules?.SecurityGroupRules ?? []).filter((r) => !r.IsEgress && r.GroupId === groupId && r.ReferencedGroupInfo?.GroupId === referencedGroup && r.SecurityGroupRuleId).map((r) => r.SecurityGroupRuleId!);
    if (!ids.length) return;
    try {
      await ec2Call(() => this.ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, SecurityGroupRuleIds: ids })));
    } catch (err) {
      if (!hasCode(err, "InvalidSecurityGroupRuleId.NotFound", "InvalidGroup.NotFound")) throw err;
    }
  }
}
