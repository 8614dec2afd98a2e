import { gql } from "../api";
import { h, uid } from "../dom";
import { formatAgo, formatDate } from "../format";
import { ConsoleSourceHealthDocument, type ConsoleSourceHealthQuery, type DrillStatus } from "../generated/graphql";

type SourceHealth = ConsoleSourceHealthQuery["sourceHealth"];

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element built through the DOM (the page's CSP allows no inline markup or styles). */
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

function verdictText(status: DrillStatus, rto: number | null): { icon: string; text: string; tone: string } {
  switch (status) {
    case "VERIFIED":
      return { icon: "✓", text: `It started: back in ${formatRto(rto)} (measured RTO)`, tone: "good" };
    case "FAILED":
      return { icon: "✗", text: "It did not start", tone: "bad" };
    case "INCONCLUSIVE":
      return { icon: "?", text: "No proof either way: nothing showed before the time limit", tone: "neutral" };
    case "CANCELLED":
      return { icon: "–", text: "The drill was cancelled", tone: "neutral" };
    default:
      return { icon: "…", text: "A drill is running right now", tone: "neutral" };
  }
}

export function formatRto(seconds: number | null): string {
  if (seconds === null) return "-";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
}

/**
 * The RTO of each drill as a small bar chart (oldest left). Drills that did not verify are marked
 * with a red cross at the baseline: they have no RTO. The same numbers are in a table for screen readers.
 */
export function rtoChart(trend: SourceHealth["rtoTrend"], title: string): SVGSVGElement {
  const W = 320;
  const H = 110;
  const pad = { l: 34, r: 6, t: 8, b: 16 };
  const max = Math.max(1, ...trend.map((p) => p.rtoSeconds ?? 0));
  const step = (W - pad.l - pad.r) / Math.max(1, trend.length);
  const y = (s: number) => H - pad.b - (s / max) * (H - pad.t - pad.b);
  const titleId = uid("rto-title");
  const chart = svg("svg", { class: "rto-chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-labelledby": titleId }, svg("title", { id: titleId }, title));
  chart.appendChild(svg("line", { class: "axis", x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }));
  chart.appendChild(svg("text", { class: "axis-label", x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, formatRto(max)));
  chart.appendChild(svg("text", { class: "axis-label", x: pad.l - 4, y: H - pad.b, "text-anchor": "end" }, "0"));
  trend.forEach((p, i) => {
    const x = pad.l + i * step + step * 0.15;
    const w = Math.max(2, step * 0.7);
    const label = `${formatDate(p.at)}: ${p.rtoSeconds === null ? p.verdict.toLowerCase() : formatRto(p.rtoSeconds)}`;
    if (p.rtoSeconds === null) {
      const cx = x + w / 2;
      const cy = H - pad.b - 5;
      chart.appendChild(svg("path", { class: "bar-failed", d: `M${cx - 4} ${cy - 4} L${cx + 4} ${cy + 4} M${cx + 4} ${cy - 4} L${cx - 4} ${cy + 4}` }, svg("title", {}, label)));
    } else {
      chart.appendChild(svg("rect", { class: "bar", x, y: y(p.rtoSeconds), width: w, height: H - pad.b - y(p.rtoSeconds) }, svg("title", {}, label)));
    }
  });
  return chart;
}

/** Per server: the last drill's verdict with the screen it saw, and the RTO over time. Loads on its own. */
export function drillsPanel(sourceName: string): HTMLElement {
  const panel = h("div", { class: "drills", "aria-live": "polite" }, h("p", { class: "hint" }, "Loading the recovery drills…"));
  void gql(ConsoleSourceHealthDocument, { sourceName }).then(
    ({ sourceHealth: s }) => panel.replaceChildren(...drillsContent(s)),
    () => panel.replaceChildren(h("p", { class: "hint" }, "The recovery drills of this server could not be loaded.")),
  );
  return panel;
}

function drillsContent(s: SourceHealth): Node[] {
  const heading = h("h3", null, "Recovery drills");
  const policy = s.policy
    ? [s.policy.every ? `every ${s.policy.every}` : null, s.policy.afterEveryBackup ? "after every backup" : null].filter(Boolean).join(" and ") || "not scheduled"
    : null;
  const policyLine = h("p", { class: "hint" }, policy ? `Drills run ${policy}.` : "No drills are set up for this server (reclo drills policy <server> --every 7d).");
  const d = s.lastDrill;
  if (!d) return [heading, policyLine, h("p", null, "No drill has run yet.")];
  const v = verdictText(d.status, d.rtoSeconds);
  const shot = d.verification?.screenshotUrl;
  const nodes: Node[] = ([
    heading,
    policyLine,
    h(
      "p",
      { class: "drill-verdict" },
      h("span", { class: `verification tone-${v.tone}` }, h("span", { "aria-hidden": "true" }, `${v.icon} `), v.text),
      h("span", { class: "hint block" }, `Last drill ${formatAgo(d.startedAt) || formatDate(d.startedAt)}`),
    ),
    d.evidenceSummary || d.failureReason ? h("p", { class: "hint" }, d.status === "VERIFIED" ? `Seen: ${d.evidenceSummary}` : (d.evidenceSummary ?? d.failureReason ?? "")) : null,
    shot
      ? h(
          "a",
          { class: "boot-shot", href: shot, target: "_blank", rel: "noopener noreferrer" },
          h("img", { src: shot, alt: `The screen of ${s.sourceName} during its last drill (opens the full picture)`, width: "200", loading: "lazy" }),
        )
      : null,
  ] as (Node | null)[]).filter((n): n is Node => n !== null);
  if (s.rtoTrend.length) {
    const title = `Measured recovery time of the last ${s.rtoTrend.length} drills of ${s.sourceName}`;
    nodes.push(
      h("figure", { class: "rto" }, rtoChart(s.rtoTrend, title), h("figcaption", { class: "hint" }, "Recovery time (RTO) per drill, oldest left; ✗ = did not start")),
      h(
        "table",
        { class: "visually-hidden" },
        h("caption", null, title),
        h("tr", null, h("th", null, "Drill"), h("th", null, "Result"), h("th", null, "RTO")),
        s.rtoTrend.map((p) => h("tr", null, h("td", null, formatDate(p.at)), h("td", null, p.verdict), h("td", null, formatRto(p.rtoSeconds)))),
      ),
    );
  }
  return nodes;
}
