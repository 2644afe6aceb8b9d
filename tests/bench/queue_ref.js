// tests/bench/queue_ref.js -- the reference job queues of queue_overhead.sh (and
// Graphile Worker for latency.sh), and the one driver that times all three systems the same way.
//
//   node queue_ref.js setup   URL [graphile]           install graphile-worker's and pg-boss's schemas
//                                                      (graphile: Graphile Worker's only)
//   node queue_ref.js worker  URL graphile-default     one Graphile Worker process, no-op task
//   node queue_ref.js worker  URL graphile-tuned       the same with local queue + batched completion
//   node queue_ref.js worker  URL pgboss               one pg-boss process, batch fetch
//   node queue_ref.js run     URL SYSTEM JOBS [USER]   enqueue JOBS no-op jobs in one transaction,
//                                                      print seconds from commit to the last one done
//
// SYSTEM for `run` is importer, graphile or pgboss. Workers print READY on
// stdout once they are looking for jobs and stop on SIGTERM. Modules come from
// NODE_PATH (queue_overhead.sh installs them with npm into a temporary
// directory). Every wait is bounded.
"use strict";

const { Client } = require("pg");

const QUEUE = "bench_noop";
const POLL_MS = 20;
const RUN_TIMEOUT_MS = 600000;

function die(msg) {
	process.stderr.write(`queue_ref.js: ${msg}\n`);
	process.exit(1);
}

async function setup(url, only) {
	const { runMigrations } = require("graphile-worker");
	await runMigrations({ connectionString: url });
	if (only === "graphile") return;
	const PgBoss = require("pg-boss");
	const boss = new PgBoss({ connectionString: url, max: 2, supervise: false, schedule: false });
	boss.on("error", (e) => die(`pg-boss: ${e.message}`));
	await boss.start();
	await boss.createQueue(QUEUE);
	await boss.stop({ graceful: false, wait: true });
}

async function graphileWorker(url, tuned) {
	const { run } = require("graphile-worker");
	const worker = tuned
		? {
				// Graphile Worker's performance page: a local queue fetches
				// jobs in batches, completions are batched.
				localQueue: { size: 500 },
				completeJobBatchDelay: 0,
				failJobBatchDelay: 0,
			}
		: {};
	const runner = await run({
		connectionString: url,
		concurrency: 1,
		noHandleSignals: true,
		taskList: { [QUEUE]: async () => {} },
		preset: { worker },
		logger: undefined,
	});
	process.stdout.write("READY\n");
	const stop = () => runner.stop().then(() => process.exit(0), () => process.exit(1));
	process.on("SIGTERM", stop);
	process.on("SIGINT", stop);
	await runner.promise;
}

async function pgbossWorker(url) {
	const PgBoss = require("pg-boss");
	const boss = new PgBoss({ connectionString: url, max: 4, supervise: false, schedule: false, migrate: false });
	boss.on("error", (e) => process.stderr.write(`pg-boss: ${e.message}\n`));
	await boss.start();
	// Batch fetch: up to 1,000 jobs per fetch (pg-boss waits out its polling interval, at least 0.5 s, after every fetch), all completed together.
	await boss.work(QUEUE, { batchSize: 1000, pollingIntervalSeconds: 0.5 }, async () => {});
	process.stdout.write("READY\n");
	const stop = () => boss.stop({ graceful: true, wait: true }).then(() => process.exit(0), () => process.exit(1));
	process.on("SIGTERM", stop);
	process.on("SIGINT", stop);
}

const SYSTEMS = {
	importer: {
		enqueue: (n, user) => ({
			text: `SELECT count(importer.submit_job('noop', NULL::uuid, jsonb_build_object('user_id', $2::text)))
			       FROM generate_series(1, $1::int)`,
			values: [n, user],
		}),
		remaining: `SELECT count(*)::int AS n FROM importer.import_jobs WHERE kind = 'noop' AND status <> 'completed'`,
	},
	graphile: {
		enqueue: (n) => ({
			text: `SELECT count(graphile_worker.add_job('${QUEUE}', '{}'::json)) FROM generate_series(1, $1::int)`,
			values: [n],
		}),
		remaining: `SELECT count(*)::int AS n FROM graphile_worker._private_jobs`,
	},
	pgboss: {
		enqueue: (n) => ({
			text: `INSERT INTO pgboss.job (name, data) SELECT '${QUEUE}', '{}'::jsonb FROM generate_series(1, $1::int)`,
			values: [n],
		}),
		remaining: `SELECT count(*)::int AS n FROM pgboss.job WHERE name = '${QUEUE}' AND state <> 'completed'`,
	},
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function timeRun(url, system, jobs, user) {
	const sys = SYSTEMS[system];
	if (!sys) die(`unknown system ${system}`);
	const c = new Client({ connectionString: url });
	await c.connect();
	await c.query("BEGIN");
	await c.query(sys.enqueue(jobs, user));
	await c.query("COMMIT");
	const t0 = process.hrtime.bigint();
	const deadline = Date.now() + RUN_TIMEOUT_MS;
	for (;;) {
		const { rows } = await c.query(sys.remaining);
		if (rows[0].n === 0) break;
		if (Date.now() > deadline) die(`${system}: ${rows[0].n} of ${jobs} jobs still not done`);
		await sleep(POLL_MS);
	}
	const secs = Number(process.hrtime.bigint() - t0) / 1e9;
	await c.end();
	process.stdout.write(`${secs.toFixed(4)}\n`);
}

async function main() {
	const [cmd, url, what, n, user] = process.argv.slice(2);
	if (!url) die("usage: see the comment at the top");
	if (cmd === "setup") return setup(url, what);
	if (cmd === "worker" && what === "graphile-default") return graphileWorker(url, false);
	if (cmd === "worker" && what === "graphile-tuned") return graphileWorker(url, true);
	if (cmd === "worker" && what === "pgboss") return pgbossWorker(url);
	if (cmd === "run") return timeRun(url, what, parseInt(n, 10), user);
	die(`bad arguments: ${process.argv.slice(2).join(" ")}`);
}

main().catch((e) => die(e.stack || String(e)));
