// Draws the panel grid of deploy/grafana/dashboards/jobbers.json (rows, panels, their first query) as
// docs/dashboard-layout.svg, and as docs/dashboard-layout.png when rsvg-convert is installed
// (apt-get install -y librsvg2-bin). Run after changing the dashboard: node scripts/render-dashboard-layout.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const columnPx = 44;
const rowPx = 20;
const margin = 16;
const headerPx = 44;
const gap = 4;
const colors = {
  background: '#111217',
  panel: '#181b1f',
  border: '#2c3235',
  title: '#d8d9da',
  muted: '#8e8e9a',
  row: '#ccccdc',
  timeseries: '#73bf69',
  stat: '#5794f2',
  bargauge: '#ff9830',
};

function escapeXml(text) {
  return text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c],
  );
}

function fit(text, widthPx, charPx) {
  const max = Math.max(0, Math.floor(widthPx / charPx));
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** The query as a reader would see it in the panel editor, variables shown as Grafana writes them. */
function firstQuery(panel) {
  const expr = panel.targets?.[0]?.expr ?? '';
  return expr.replace(/\s+/g, ' ').trim();
}

function glyph(panel, x, y, w, h) {
  const color = colors[panel.type] ?? colors.muted;
  const top = y + 40;
  const bottom = y + h - 10;
  if (bottom - top < 12) return '';
  if (panel.type === 'timeseries') {
    const points = [];
    const steps = 24;
    for (let i = 0; i <= steps; i++) {
      const px = x + 10 + ((w - 20) * i) / steps;
      const wave = 0.5 + 0.3 * Math.sin(i / 2.3 + panel.id) + 0.15 * Math.sin(i * 1.7 + panel.id * 3);
      points.push(`${px.toFixed(1)},${(bottom - (bottom - top) * wave).toFixed(1)}`);
    }
    return `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2" stroke-opacity="0.7"/>`;
  }
  if (panel.type === 'bargauge') {
    const bars = 3;
    const barH = Math.min(14, (bottom - top) / bars - 6);
    return Array.from({ length: bars }, (_, i) => {
      const by = top + i * (barH + 6);
      const fill = (w - 20) * (0.85 - i * 0.25);
      return `<rect x="${x + 10}" y="${by}" width="${fill.toFixed(1)}" height="${barH}" rx="2" fill="${color}" fill-opacity="0.6"/>`;
    }).join('');
  }
  return `<text x="${x + w / 2}" y="${(top + bottom) / 2 + 12}" text-anchor="middle" font-size="30" font-weight="600" fill="${color}" fill-opacity="0.8">123</text>`;
}

export function renderLayout(dashboard) {
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const bottom = Math.max(...panels.map((p) => p.gridPos.y + p.gridPos.h));
  const width = margin * 2 + 24 * columnPx;
  const height = headerPx + margin + bottom * rowPx + margin;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="${colors.background}"/>`,
    `<text x="${margin}" y="28" font-size="18" font-weight="600" fill="${colors.title}">${escapeXml(dashboard.title)}</text>`,
    `<text x="${width - margin}" y="28" font-size="12" text-anchor="end" fill="${colors.muted}">panel layout of deploy/grafana/dashboards/jobbers.json · ` +
      `<tspan fill="${colors.stat}">■</tspan> stat <tspan fill="${colors.timeseries}">■</tspan> time series <tspan fill="${colors.bargauge}">■</tspan> bar gauge</text>`,
  ];
  for (const panel of panels) {
    const { x: gx, y: gy, w: gw, h: gh } = panel.gridPos;
    const x = margin + gx * columnPx + gap / 2;
    const y = headerPx + gy * rowPx + gap / 2;
    const w = gw * columnPx - gap;
    const h = gh * rowPx - gap;
    if (panel.type === 'row') {
      parts.push(
        `<text x="${x}" y="${y + h - 3}" font-size="14" font-weight="600" fill="${colors.row}">⌄ ${escapeXml(panel.title)}</text>`,
      );
      continue;
    }
    const accent = colors[panel.type] ?? colors.muted;
    parts.push(
      `<rect x="${x}" y="${y}" width="${w}" height="${h}" rx="3" fill="${colors.panel}" stroke="${colors.border}"/>`,
      `<rect x="${x}" y="${y}" width="3" height="${h}" rx="1" fill="${accent}"/>`,
      `<text x="${x + 10}" y="${y + 17}" font-size="12" font-weight="600" fill="${colors.title}">${escapeXml(fit(panel.title, w - 20, 7))}</text>`,
      `<text x="${x + 10}" y="${y + 32}" font-size="9" font-family="DejaVu Sans Mono, monospace" fill="${colors.muted}">${escapeXml(fit(firstQuery(panel), w - 20, 5.5))}</text>`,
      glyph(panel, x, y, w, h),
    );
  }
  parts.push('</svg>');
  return `${parts.filter(Boolean).join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dashboard = JSON.parse(
    readFileSync(path.join(root, 'deploy/grafana/dashboards/jobbers.json'), 'utf8'),
  );
  const svgFile = path.join(root, 'docs/dashboard-layout.svg');
  const pngFile = path.join(root, 'docs/dashboard-layout.png');
  writeFileSync(svgFile, renderLayout(dashboard));
  console.log(`wrote ${path.relative(root, svgFile)}`);
  const converted = spawnSync('rsvg-convert', ['--format=png', `--output=${pngFile}`, svgFile], {
    stdio: 'inherit',
  });
  if (converted.error)
    console.log('rsvg-convert not found (apt-get install -y librsvg2-bin): PNG not updated');
  else if (converted.status !== 0) process.exit(converted.status ?? 1);
  else console.log(`wrote ${path.relative(root, pngFile)}`);
}
