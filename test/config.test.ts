// loadConfig: defaults, precedence (defaults < config file < TYPHA_* env < flags), value parsing,
// and errors that name the setting, its environment variable and where the bad value came from.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, effectivePort, envName, loadConfig, SETTINGS } from '../src/config.js';

let dir: string;
let fileNo = 0;
function configFile(text: string, ext = 'yaml'): string {
  const p = join(dir, `config-${++fileNo}.${ext}`);
  writeFileSync(p, text);
  return p;
}

/** Asserts loadConfig throws a ConfigError whose message contains every given fragment. */
function assertConfigError(fn: () => unknown, ...fragments: (string | RegExp)[]): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} should mention ${JSON.stringify(f)}`);
    else assert.match(caught.message, f);
  }
  return caught;
}

before(() => { dir = mkdtempSync(join(tmpdir(), 'fanout-config-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

describe('defaults', () => {
  test('with nothing set, Typha defaults', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.serverPort, 5473);
    assert.equal(c.healthPort, 9098);
    assert.equal(c.prometheusMetricsPort, 9093);
    assert.equal(c.historyMaxBytes, 64 * 1024 * 1024);
    assert.equal(c.datastoreType, 'memory');
    assert.equal(c.healthEnabled, true);
    assert.equal(c.prometheusMetricsEnabled, true);
    assert.equal(c.logSeverityScreen, 'INFO');
    assert.equal(c.serverPingIntervalSecs, 10);
    assert.equal(c.serverMaxInboundMessageBytes, 256 * 1024);
    assert.equal(c.serverHost, '');
    // The status page lists clients: it is opt-in.
    assert.equal(c.statusPageEnabled, false);
  });

  test('every setting gets a value, and the default seed is the demo cluster', () => {
    const c = loadConfig({ env: {} }) as unknown as Record<string, unknown>;
    for (const s of SETTINGS) assert.notEqual(c[s.name], undefined, s.name);
    assert.equal(c.memorySeedPaths instanceof Array, true);
    assert.match((c.memorySeedPaths as string[])[0]!, /examples[/\\]demo-cluster$/);
  });

  test('env var names are TYPHA_ + the upper-cased Typha name', () => {
    const port = SETTINGS.find((s) => s.name === 'serverPort')!;
    assert.equal(envName(port), 'TYPHA_SERVERPORT');
    const ping = SETTINGS.find((s) => s.name === 'serverPingIntervalSecs')!;
    assert.equal(envName(ping), 'TYPHA_SERVERPINGINTERVALSECS');
  });

  test('effectivePort: 0 is the default, -1 ephemeral', () => {
    assert.equal(effectivePort(0, 5473), 5473);
    assert.equal(effectivePort(-1, 5473), 0);
    assert.equal(effectivePort(6000, 5473), 6000);
  });
});

describe('precedence', () => {
  test('env overrides the default', () => {
    assert.equal(loadConfig({ env: { TYPHA_SERVERPORT: '6000' } }).serverPort, 6000);
  });

  test('a flag overrides env', () => {
    assert.equal(loadConfig({ env: { TYPHA_SERVERPORT: '6000' }, flags: { serverPort: '7000' } }).serverPort, 7000);
  });

  test('config file (camelCase and Typha names) is below env and flags, above defaults', () => {
    const file = configFile('serverPort: 5600\nServerPingIntervalSecs: 3\nhealthPort: 9100\nHistoryMaxBytes: 1MiB\n');
    const fromFile = loadConfig({ env: {}, configFile: file });
    assert.equal(fromFile.serverPort, 5600);
    assert.equal(fromFile.serverPingIntervalSecs, 3);
    assert.equal(fromFile.healthPort, 9100);
    assert.equal(fromFile.historyMaxBytes, 1 << 20);
    assert.equal(fromFile.prometheusMetricsPort, 9093, 'unset in the file: default');

    const envWins = loadConfig({ env: { TYPHA_SERVERPORT: '6000', TYPHA_SERVERPINGINTERVALSECS: '4' }, configFile: file });
    assert.equal(envWins.serverPort, 6000);
    assert.equal(envWins.serverPingIntervalSecs, 4);
    assert.equal(envWins.healthPort, 9100, 'file still applies where env is silent');

    const flagWins = loadConfig({ env: { TYPHA_SERVERPORT: '6000' }, flags: { serverPort: '7000' }, configFile: file });
    assert.equal(flagWins.serverPort, 7000);
  });

  test('a JSON config file works too', () => {
    const file = configFile(JSON.stringify({ ServerPort: 5601, logSeverityScreen: 'debug', healthEnabled: false }), 'json');
    const c = loadConfig({ env: {}, configFile: file });
    assert.equal(c.serverPort, 5601);
    assert.equal(c.logSeverityScreen, 'DEBUG');
    assert.equal(c.healthEnabled, false);
  });

  test('an empty config file is no settings', () => {
    const c = loadConfig({ env: {}, configFile: configFile('') });
    assert.equal(c.serverPort, 5473);
  });

  test('an empty env var is ignored (as if unset)', () => {
    const c = loadConfig({ env: { TYPHA_SERVERPORT: '', TYPHA_HEALTHENABLED: '', TYPHA_LOGSEVERITYSCREEN: '' } });
    assert.equal(c.serverPort, 5473);
    assert.equal(c.healthEnabled, true);
    assert.equal(c.logSeverityScreen, 'INFO');
    const file = configFile('serverPort: 5602\n');
    assert.equal(loadConfig({ env: { TYPHA_SERVERPORT: '' }, configFile: file }).serverPort, 5602, 'empty env does not hide the file');
  });

  test('env uses the Typha name, not the camelCase one', () => {
    assert.equal(loadConfig({ env: { TYPHA_SERVERPORT: '6001', serverPort: '6002' } }).serverPort, 6001);
  });
});

describe('parsing', () => {
  test('byte sizes: plain numbers and units', () => {
    const b = (v: string) => loadConfig({ env: { TYPHA_HISTORYMAXBYTES: v } }).historyMaxBytes;
    assert.equal(b('512KiB'), 512 * 1024);
    assert.equal(b('64MiB'), 64 * 1024 * 1024);
    assert.equal(b('1048576'), 1048576);
    assert.equal(b('1GiB'), 1 << 30);
    assert.equal(b('2MB'), 2_000_000);
    assert.equal(b('10k'), 10_000);
    assert.equal(b('1.5KiB'), 1536);
    assert.equal(b(' 64 MiB '), 64 * 1024 * 1024);
    assert.equal(b('0'), 0);
    const file = configFile('historyMaxBytes: 2048\nsnapshotChunkBytes: 512KiB\n');
    const c = loadConfig({ env: {}, configFile: file });
    assert.equal(c.historyMaxBytes, 2048);
    assert.equal(c.snapshotChunkBytes, 512 * 1024);
  });

  test('ports, seconds, booleans, choices, lists', () => {
    const c = loadConfig({
      env: {
        TYPHA_SERVERPORT: '-1', TYPHA_HEALTHPORT: '0', TYPHA_SERVERHANDSHAKETIMEOUTSECS: '2.5',
        TYPHA_HEALTHENABLED: 'false', TYPHA_PROMETHEUSMETRICSENABLED: 'no', TYPHA_LOGSEVERITYSCREEN: 'warning',
        TYPHA_MEMORYSEEDPATHS: '/a, /b,,/c', TYPHA_DATASTORETYPE: 'MEMORY',
      },
    });
    assert.equal(c.serverPort, -1);
    assert.equal(c.healthPort, 0);
    assert.equal(c.serverHandshakeTimeoutSecs, 2.5);
    assert.equal(c.healthEnabled, false);
    assert.equal(c.prometheusMetricsEnabled, false);
    assert.equal(c.logSeverityScreen, 'WARNING');
    assert.deepEqual(c.memorySeedPaths, ['/a', '/b', '/c']);
    assert.equal(c.datastoreType, 'memory');
    assert.equal(loadConfig({ env: { TYPHA_HEALTHENABLED: 'TRUE' } }).healthEnabled, true);
    assert.equal(loadConfig({ env: { TYPHA_HEALTHENABLED: '1' } }).healthEnabled, true);
    assert.deepEqual(loadConfig({ env: {}, flags: { memorySeedPaths: ['/x', '/y'] } }).memorySeedPaths, ['/x', '/y']);
  });
});

describe('bad values', () => {
  const envSource = (v: string) => `environment variable ${v}`;

  test('TYPHA_SERVERPORT=abc', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPORT: 'abc' } }), 'serverPort', 'TYPHA_SERVERPORT', envSource('TYPHA_SERVERPORT'), '"abc"', 'not a number');
  });

  test('TYPHA_SERVERPORT=70000', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPORT: '70000' } }), 'serverPort', 'TYPHA_SERVERPORT', envSource('TYPHA_SERVERPORT'), '70000', /port/);
  });

  test('TYPHA_SERVERPORT=-2 and 80.5', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPORT: '-2' } }), 'serverPort', 'TYPHA_SERVERPORT');
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPORT: '80.5' } }), 'serverPort', 'TYPHA_SERVERPORT');
  });

  test('TYPHA_LOGSEVERITYSCREEN=LOUD', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_LOGSEVERITYSCREEN: 'LOUD' } }),
      'logSeverityScreen', 'TYPHA_LOGSEVERITYSCREEN', envSource('TYPHA_LOGSEVERITYSCREEN'), 'LOUD', 'DEBUG');
  });

  test('TYPHA_HEALTHENABLED=maybe', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_HEALTHENABLED: 'maybe' } }),
      'healthEnabled', 'TYPHA_HEALTHENABLED', envSource('TYPHA_HEALTHENABLED'), 'maybe', /boolean/);
  });

  test('negative history bytes (env, flag and file)', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_HISTORYMAXBYTES: '-1' } }),
      'historyMaxBytes', 'TYPHA_HISTORYMAXBYTES', envSource('TYPHA_HISTORYMAXBYTES'));
    assertConfigError(() => loadConfig({ env: {}, flags: { historyMaxBytes: '-5MiB' } }),
      'historyMaxBytes', 'TYPHA_HISTORYMAXBYTES', 'flag --history-bytes');
    const file = configFile('historyMaxBytes: -100\n');
    assertConfigError(() => loadConfig({ env: {}, configFile: file }),
      'historyMaxBytes', 'TYPHA_HISTORYMAXBYTES', `config file ${file}`, /minimum/);
  });

  test('history bytes that are not a size', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_HISTORYMAXBYTES: 'lots' } }), 'historyMaxBytes', 'TYPHA_HISTORYMAXBYTES', '"lots"', /size/);
    assertConfigError(() => loadConfig({ env: { TYPHA_HISTORYMAXBYTES: '12 parsecs' } }), 'historyMaxBytes', 'TYPHA_HISTORYMAXBYTES');
  });

  test('below a minimum', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERMAXINBOUNDMESSAGEBYTES: '100' } }),
      'serverMaxInboundMessageBytes', 'TYPHA_SERVERMAXINBOUNDMESSAGEBYTES', /minimum/);
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPINGINTERVALSECS: '0' } }),
      'serverPingIntervalSecs', 'TYPHA_SERVERPINGINTERVALSECS', /minimum/);
  });

  test('a bad flag names the flag', () => {
    assertConfigError(() => loadConfig({ env: {}, flags: { serverPort: 'abc' } }), 'serverPort', 'TYPHA_SERVERPORT', 'flag --server-port');
  });

  test('a bad value in the config file names the file', () => {
    const file = configFile('ServerPingIntervalSecs: soon\n');
    assertConfigError(() => loadConfig({ env: {}, configFile: file }),
      'serverPingIntervalSecs', 'TYPHA_SERVERPINGINTERVALSECS', `config file ${file}`);
  });

  test('every source is validated: a bad env value is an error even when a flag also sets it', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_SERVERPORT: 'abc' }, flags: { serverPort: '7000' } }), 'TYPHA_SERVERPORT');
  });

  test('an unknown key in the config file', () => {
    const file = configFile('serverPort: 5473\nserverPortt: 1\n');
    assertConfigError(() => loadConfig({ env: {}, configFile: file }), file, 'serverPortt');
  });

  test('unparsable YAML', () => {
    const file = configFile('serverPort: [5473\nhealthPort: {\n');
    assertConfigError(() => loadConfig({ env: {}, configFile: file }), file);
  });

  test('a config file that is not a mapping', () => {
    const file = configFile('- serverPort\n- 5473\n');
    assertConfigError(() => loadConfig({ env: {}, configFile: file }), file, /mapping/);
  });

  test('a config file that does not exist', () => {
    const missing = join(dir, 'missing.yaml');
    assert.equal(existsSync(missing), false);
    assertConfigError(() => loadConfig({ env: {}, configFile: missing }), missing);
  });

  test('a bad datastore type lists the choices', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_DATASTORETYPE: 'redis' } }), 'datastoreType', 'TYPHA_DATASTORETYPE', 'memory', 'etcdv3', 'kubernetes');
  });
});

describe('the status page setting', () => {
  test('TYPHA_STATUSPAGEENABLED and --status-page turn it on', () => {
    assert.equal(loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true' } }).statusPageEnabled, true);
    assert.equal(loadConfig({ env: {}, flags: { statusPageEnabled: true } }).statusPageEnabled, true);
    assert.equal(SETTINGS.find((s) => s.name === 'statusPageEnabled')?.flag, 'status-page');
  });

  test('it needs the health listener, and one of its own', () => {
    assertConfigError(() => loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true', TYPHA_HEALTHENABLED: 'false' } }),
      'statusPageEnabled', 'TYPHA_HEALTHENABLED');
    assertConfigError(() => loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true', TYPHA_HEALTHPORT: '9093' } }),
      'statusPageEnabled', 'metrics port', '9093');
    // The same port without the page, or with metrics off, is fine.
    assert.equal(loadConfig({ env: { TYPHA_HEALTHPORT: '9093' } }).healthPort, 9093);
    assert.equal(loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true', TYPHA_HEALTHPORT: '9093', TYPHA_PROMETHEUSMETRICSENABLED: 'false' } }).statusPageEnabled, true);
    // Ephemeral ports never coincide.
    assert.equal(loadConfig({ env: { TYPHA_STATUSPAGEENABLED: 'true', TYPHA_HEALTHPORT: '-1', TYPHA_PROMETHEUSMETRICSPORT: '-1' } }).statusPageEnabled, true);
  });
});
