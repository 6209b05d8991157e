/**
 * The transport conformance suite on the mongo transport, against the server
 * test/setup/mongo.ts picks (MONGO_URL, mongodb-memory-server or FerretDB).
 * The claim-race test runs wherever the server makes findOneAndUpdate atomic
 * across connections, i.e. everywhere but FerretDB.
 */
import { describeTransport } from './conformance/index.js';
import { createMongoTransport, type MongoTransport } from '../transports/mongo/index.js';
import { acquireMongo, freshDb, planMongo, releaseMongo, type MongoTestServer } from './setup/mongo.js';

const FERRET_RACE = 'FerretDB makes findAndModify atomic only on one connection (reasonq uses one per process); 8 workers on separate transports would race';

// Decided when mocha collects the tests, before any server starts.
const plan = await planMongo();
const ferret = plan === 'ferretdb' || plan === 'external-ferretdb';

describe('mongo transport', function () {
  this.timeout(300_000); // a cold FerretDB build or a MongoDB download
  let server: MongoTestServer | null = null;
  const db = freshDb('reasonq_conformance');
  const opened: MongoTransport[] = [];
  before(async () => {
    server = await acquireMongo();
  });
  after(async () => {
    await Promise.all(opened.map((t) => t.close()));
    await releaseMongo();
  });
  describeTransport(
    'mongo',
    async (options) => {
      const t = createMongoTransport({ uri: server!.uri, db, ...options });
      opened.push(t);
      await t.init();
      return t;
    },
    { skip: ferret ? { atomicClaimRace: FERRET_RACE } : {}, shortLeaseMs: 400 },
  );
});
