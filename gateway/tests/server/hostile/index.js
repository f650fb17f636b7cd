// A hostile tenant's Node function. It passes the analyzer: modules are loaded through a name built
// at run time and internal bindings through computed property names.
const fs = require('fs');

const load = module.constructor['_lo' + 'ad'];
const net = load('n' + 'et', module, false);

function attempt(action) {
  try {
    return { ok: true, value: String(action()).slice(0, 300) };
  } catch (error) {
    return { ok: false, code: error.code || null, error: String(error.message).slice(0, 200) };
  }
}

function connect(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 3000 });
    socket.on('connect', () => { socket.destroy(); resolve({ ok: true }); });
    socket.on('timeout', () => { socket.destroy(); resolve({ ok: false, code: 'TIMEOUT' }); });
    socket.on('error', (error) => resolve({ ok: false, code: error.code }));
  });
}

exports.handler = async (body) => {
  const childProcess = load('child' + '_process', module, false);
  const results = {
    uid: process.getuid(),
    net_namespace: fs.readlinkSync('/proc/self/ns/net'),
    pid: process.pid,
    root: fs.readdirSync('/').sort(),
    exec_sync: attempt(() => childProcess.execSync('id')),
    spawn_sync_self: attempt(() => { const r = childProcess.spawnSync(process.execPath, ['-e', '1']); if (r.error) throw r.error; return r.status; }),
    spawn_binding: attempt(() => {
      // The internal binding child_process sits on, called directly.
      const binding = process['bind' + 'ing']('spawn_sync');
      const pipe = (readable) => ({ type: 'pipe', readable, writable: !readable });
      const result = binding.spawn({
        file: process.execPath, args: [process.execPath, '-e', '1'], envPairs: [], stdio: [pipe(true), pipe(false), pipe(false)],
      });
      if (result.error) throw Object.assign(new Error(`spawn_sync binding failed: ${result.error}`), { code: result.error });
      return result.status;
    }),
    fork_worker: attempt(() => childProcess.fork('/fn/index.js')),
    kill_server: attempt(() => process.kill(body.server_pid, 0)),
    reads: {},
  };
  for (const path of body.paths) {
    results.reads[path] = {
      direct: attempt(() => fs.readFileSync(path).length),
      proc_self_root: attempt(() => fs.readFileSync('/proc/self/root' + path).length),
      dot_dot_walk: attempt(() => fs.readFileSync('../'.repeat(12) + path.slice(1)).length),
    };
  }
  results.write_fn = attempt(() => fs.writeFileSync('/fn/owned', 'x'));
  results.gateway = await connect('127.0.0.1', body.gateway_port);
  results.metadata = await connect('169.254.169.254', 80);
  results.listen = await new Promise((resolve) => {
    const server = net['create' + 'Server']();
    server.on('error', (error) => resolve({ ok: false, code: error.code }));
    server.listen(0, '127.0.0.1', () => { server.close(); resolve({ ok: true }); });
  });
  return results;
};
