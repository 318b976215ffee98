// calico-fanout: serve | watch | dump | load-etcd | bench.
// Each command loads what it uses when it runs (the server, the client library, a datastore
// client, the bench harness): `--help` and the client commands start fast and stay small.
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { SyncClient, Update } from '../client/index.js';
import { ConfigError, envName, loadConfig, SETTINGS, type Config } from '../src/config.js';
import { isSyncerType, needsNode, SYNCER_TYPES, type SyncerType } from '../src/model/views.js';
import { VERSION } from '../src/version.js';

const program = new Command('calico-fanout')
  .description('Typha-style fan-out cache for Calico: one datastore watch, deltas to many agents over WebSocket+msgpack')
  .version(VERSION);

// ---- settings as flags ---------------------------------------------------------------------
type SettingFilter = (name: string) => boolean;

/** Adds a flag for every setting that has one (and passes the filter), plus --config-file. */
function withSettings(cmd: Command, want: SettingFilter = () => true): Command {
  cmd.option('-c, --config-file <path>', 'YAML or JSON file of settings (camelCase or Typha names)');
  for (const s of SETTINGS) {
    if (!s.flag || !want(s.name)) continue;
    const arg = s.kind === 'list' ? `<${s.flag}...>` : s.kind === 'bool' ? '' : '<value>';
    cmd.addOption(new Option(`--${s.flag}${arg ? ' ' + arg : ''}`, `${s.help} [env ${envName(s)}, default ${JSON.stringify(s.default)}]`));
  }
  return cmd;
}

/** The configuration from flags, environment, config file and defaults; exit 2 when it is bad. */
function configFrom(opts: Record<string, unknown>): Config {
  const flags: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const v = s.flag ? opts[camel(s.flag)] : undefined;
    if (v !== undefined) flags[s.name] = v;
  }
  try {
    return loadConfig({ flags, configFile: opts.configFile as string | undefined });
  } catch (err) {
    if (err instanceof ConfigError) fatal(2, `configuration error: ${err.message}`);
    throw err;
  }
}

// ---- serve -------------------------------------------------------------------------------
const serve = withSettings(program.command('serve')
  .description('serve the configured datastore to agents (with nothing configured: the demo cluster from the memory datastore)'));
serve.addHelpText('after', `\nEvery setting can also be given as an environment variable:\n${SETTINGS.map((s) => `  ${envName(s).padEnd(38)} ${s.help}`).join('\n')}`);
serve.action(async (opts: Record<string, unknown>) => {
  const config = configFrom(opts);
  const [{ startApp }, { createLogger }, { SeedError }] = await Promise.all([import('./app.js'), import('../src/logging.js'), import('../src/datastore/seed.js')]);
  const logger = createLogger(config.logSeverityScreen);
  let app;
  try {
    app = await startApp(config, logger);
  } catch (err) {
    const etcdError = config.datastoreType === 'etcdv3' && err instanceof (await import('../src/datastore/etcd.js')).EtcdError;
    if (err instanceof ConfigError || err instanceof SeedError || etcdError) fatal(2, `configuration error: ${(err as Error).message}`);
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES') fatal(1, `cannot listen: ${e.message}`);
    throw err;
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, timeoutSecs: signal === 'SIGTERM' ? config.shutdownTimeoutSecs : 0 }, 'shutting down');
    // SIGTERM is Kubernetes stopping the pod: hand the clients over gradually. SIGINT is a person.
    if (signal === 'SIGTERM') await app.drain();
    await app.close();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
});

// ---- watch / dump ------------------------------------------------------------------------
const syncerArg = (v: string): SyncerType => {
  if (!isSyncerType(v)) throw new InvalidArgumentError(`must be one of ${SYNCER_TYPES.join(', ')}`);
  return v;
};
const clientOptions = (cmd: Command) => cmd
  .option('--url <url...>', 'server URL(s), rotated on reconnect', ['ws://127.0.0.1:5473'])
  .addOption(new Option('--syncer <type>', `syncer type (${SYNCER_TYPES.join(', ')})`).argParser(syncerArg).default('felix'))
  .option('--node <name>', 'this node\'s name (required by tunnel-ip-allocation and node-status)', '')
  .option('--timeout <secs>', 'give up (exit 1) if not in sync within this many seconds; 0 waits forever', '0')
  .option('--log-level <level>', 'client log level on stderr (DEBUG, INFO, WARNING, ERROR, NONE)', 'INFO');

async function makeClient(opts: { url: string[]; syncer: SyncerType; node: string; logLevel: string }, onUpdates?: (u: Update[]) => void, onStatus?: (s: string) => void): Promise<SyncClient> {
  if (needsNode(opts.syncer) && !opts.node) fatal(2, `--node is required for --syncer ${opts.syncer}`);
  const [{ SyncClient }, { createLogger }] = await Promise.all([import('../client/index.js'), import('../src/logging.js')]);
  const logger = createLogger(opts.logLevel, 2);
  return new SyncClient({ urls: opts.url, syncerType: opts.syncer, node: opts.node, clientName: 'calico-fanout-cli', onUpdates, onStatus, logger });
}

/** Waits for the client to be in sync, giving up (exit 1) after --timeout seconds. */
async function syncWithin(client: SyncClient, secs: string, what: string): Promise<void> {
  const s = Number(secs);
  if (!Number.isFinite(s) || s < 0) fatal(2, `--timeout must be a number of seconds`);
  const timer = s > 0 ? setTimeout(() => fatal(1, `${what}: not in sync within ${s}s`), s * 1000) : undefined;
  client.start();
  await client.inSync();
  clearTimeout(timer);
}

clientOptions(program.command('watch'))
  .description('follow a view through the client library, printing updates and status')
  .option('--until-in-sync', 'exit 0 once in sync (last line: "in sync: <N> keys")')
  .option('--json', 'print updates as NDJSON')
  .action(async (opts) => {
    const print = (u: Update) => {
      if (opts.json) out(JSON.stringify(u));
      else out(`${u.value === null ? 'DEL' : 'SET'} ${u.key} rev=${u.revision}`);
    };
    const client = await makeClient(opts, (us) => us.forEach(print), (s) => { if (!opts.json) out(`status: ${s}`); });
    await syncWithin(client, opts.timeout, 'watch');
    if (opts.untilInSync) {
      out(`in sync: ${client.size} keys`);
      await client.stop();
      process.exit(0);
    }
    process.on('SIGINT', () => void client.stop().then(() => process.exit(0)));
    process.on('SIGTERM', () => void client.stop().then(() => process.exit(0)));
  });

clientOptions(program.command('dump'))
  .description("print a view's current content as NDJSON ({key, revision, value} per line, sorted by key)")
  .action(async (opts) => {
    const client = await makeClient(opts);
    await syncWithin(client, opts.timeout, 'dump');
    const rows = [...client.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, v] of rows) out(JSON.stringify({ key, revision: v.revision, value: v.value }));
    await client.stop();
    process.exit(0);
  });

// ---- load-etcd ---------------------------------------------------------------------------
withSettings(program.command('load-etcd'), (n) => n.startsWith('etcd') || n === 'memorySeedPaths')
  .description('write Calico resources from YAML/JSON files (default: the demo cluster) into etcd, as Calico\'s etcd datastore stores them')
  .action(async (opts: Record<string, unknown>) => {
    const config = configFrom(opts);
    const [{ loadResources, SeedError }, { asCreatedByCalico }, { etcdClient, putAll }, { etcdConnection }] = await Promise.all([
      import('../src/datastore/seed.js'), import('../src/datastore/calico-write.js'), import('../src/datastore/etcd.js'), import('./datastore-etcd.js')]);
    let resources;
    try {
      resources = loadResources(config.memorySeedPaths);
    } catch (err) {
      if (err instanceof SeedError) fatal(2, err.message);
      throw err;
    }
    const client = etcdClient(etcdConnection(config));
    try {
      const now = new Date();
      await putAll(client, resources.map(({ key, value }) => ({ key, value: asCreatedByCalico(key, value, now) })));
    } catch (err) {
      fatal(1, `cannot write to etcd at ${config.etcdEndpoints.join(', ')}: ${(err as Error).message}`);
    } finally {
      client.close();
    }
    out(`loaded ${resources.length} resources into ${config.etcdEndpoints.join(', ')}`);
  });

// ---- bench ---------------------------------------------------------------------------------
program.command('bench')
  .description('load tests and benchmarks: the same as `npm run bench -- <scenario> [options]` (see bench/cli.ts, BENCHMARKS.md)')
  .argument('[args...]', 'scenario and its options, e.g. steady --clients 500 --rate 200')
  .allowUnknownOption()
  .helpOption(false)
  .action(async (args: string[]) => {
    // The harness runs from its TypeScript sources through tsx (it forks workers the same way), so
    // it needs a clone with its development dependencies, not the published package.
    // One level up from cmd/, two from dist/cmd/.
    const harness = [new URL('../bench/cli.ts', import.meta.url), new URL('../../bench/cli.ts', import.meta.url)].find((u) => existsSync(u));
    let tsx: { register(): unknown } | undefined;
    try {
      tsx = await import('tsx/esm/api');
    } catch { /* reported below */ }
    if (!harness || !tsx) {
      fatal(2, 'bench: the load-test harness runs from its sources (bench/) with tsx, a development dependency; '
        + 'run it in a clone of the repository after `npm install` (or `npm run bench -- <scenario>`)');
    }
    tsx.register();
    // The harness reads its own command line.
    process.argv = [process.argv[0]!, 'bench', ...args];
    await import(harness.href);
  });

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

function fatal(code: number, msg: string): never {
  process.stderr.write(`calico-fanout: ${msg}\n`);
  process.exit(code);
}

await program.parseAsync(process.argv);
