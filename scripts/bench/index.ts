/**
 * `npm run bench`: the memory and http transports through the same scenarios
 * (scripts/bench/common.ts), one table. The Mongo and Redis benchmarks are
 * scripts/bench/mongo.ts and scripts/bench/redis.ts (they start their servers).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createMemoryTransport } from '../../dist/transports/memory/index.js';
import { createHttpTransport } from '../../dist/transports/http/index.js';
import { createServer } from '../../dist/src/server/app.js';
import { resultTable, runScenarios, type BenchResult } from './common.js';

const results: BenchResult[] = [];

const memory = createMemoryTransport();
await memory.init();
results.push(await runScenarios('memory', memory));
await memory.close();

const store = createMemoryTransport();
await store.init();
const app = await createServer({ transport: store });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const producer = createHttpTransport({ url });
const consumer = createHttpTransport({ url });
results.push(await runScenarios('http (server + memory store, same process)', producer, consumer));
await producer.close();
await consumer.close();
await app.close();
await store.close();

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
console.log(`reasonq ${version} on Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'})\n`);
console.log(resultTable(results));
