// tsc copies no assets: put the dashboard page, script and style and the Lua scripts beside the compiled code.
import { cpSync, existsSync, mkdirSync } from 'node:fs';

const copies = [
  ['src/server/dashboard.html', 'dist/src/server/dashboard.html'],
  ['src/server/dashboard-app.js', 'dist/src/server/dashboard-app.js'],
  ['src/server/dashboard-charts.js', 'dist/src/server/dashboard-charts.js'],
  ['src/server/dashboard.css', 'dist/src/server/dashboard.css'],
  ['transports/redis/lua', 'dist/transports/redis/lua'],
];
for (const [from, to] of copies) {
  if (!existsSync(from)) continue;
  mkdirSync(to.replace(/\/[^/]+$/, ''), { recursive: true });
  cpSync(from, to, { recursive: true });
}
