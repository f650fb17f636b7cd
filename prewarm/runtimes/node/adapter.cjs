// ContainerPub warm-worker adapter for Node functions. See prewarm/PROTOCOL.md.
//
// Usage: node adapter.cjs ENTRY [FUNCTION [SHAPE]]. Loads the entry once (CommonJS or ESM, by
// Node's own rules: .cjs/.mjs, package.json "type"), finds the function to call, settles the shape
// it was written for (told, or `auto`: detected, see node_shapes/detect.cjs), writes a `ready`
// frame, then serves one request at a time: read a frame on fd 3, call the function in its shape
// (this file holds the platform's own, `body`; node_shapes/ one module per other platform's),
// write the reply on fd 4.
// A module that loads but has nothing to call is a script: it gets a `no_handler` frame and the
// platform runs it one process per call instead. stdout and stderr belong to the function: they
// are log pipes, never frames.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { pathToFileURL } = require('url');

const REQUEST_FD = Number(process.env.CONTAINERPUB_REQUEST_FD || 3);
const RESPONSE_FD = Number(process.env.CONTAINERPUB_RESPONSE_FD || 4);

function writeAll(buffer) {
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(RESPONSE_FD, buffer, offset);
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
    }
  }
}

// One buffer, one write: the 4-byte length, then the JSON text.
function writeEncoded(json) {
  const length = Buffer.byteLength(json, 'utf8');
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, 4, 'utf8');
  writeAll(frame);
}

function writeFrame(message) {
  writeEncoded(JSON.stringify(message));
}

function describeError(error) {
  const isError = error instanceof Error;
  const message = isError ? error.message : String(error);
  const described = {
    type: isError ? error.constructor.name : typeof error,
    message,
    stack: isError && error.stack ? String(error.stack) : undefined,
  };
  if (error instanceof RangeError && /allocation failed|out of memory/i.test(message)) {
    described.kind = 'out_of_memory';
  }
  return described;
}

function handlerBody(event) {
  if (event.body === null || event.body === undefined || event.body === '') return {};
  if (event.body_is_base64) return event.body;
  try {
    return JSON.parse(event.body);
  } catch (_) {
    return event.body;
  }
}

// The second argument: the request as received, plus what a Lambda context carries that means
// something here. `deadline_ms` is the invocation's budget, counted from the frame's arrival.
function contextObject(frame, receivedAt) {
  const event = frame.event || {};
  const deadline = receivedAt + Number(frame.deadline_ms || 0);
  return {
    method: event.method,
    path: event.path,
    query: event.query || {},
    headers: event.headers || {},
    body: event.body === undefined ? null : event.body,
    isBase64Encoded: Boolean(event.body_is_base64),
    invocationId: frame.id,
    functionName: process.env.FUNCTION_NAME,
    functionVersion: process.env.FUNCTION_VERSION,
    memoryLimitInMB: Number(process.env.FUNCTION_MAX_MEMORY_MB),
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

// The platform's own shape, `body`: `handler(body, context)`.
function invokeBody(handler, frame) {
  return handler(handlerBody(frame.event || {}), contextObject(frame, Date.now()));
}

// Runs one request in the function's shape; returns the reply frame's JSON text (encoded once:
// encoding is also the check that the result is JSON).
async function invoke(call, frame) {
  try {
    let result = await call(frame);
    if (result === undefined) result = null;
    try {
      return JSON.stringify({ type: 'response', id: frame.id, ok: true, result });
    } catch (error) {
      // `kind: invalid_output`: the platform answers 502 invalid_output (PROTOCOL.md).
      return JSON.stringify({ type: 'response', id: frame.id, ok: false, error: {
        type: 'TypeError', message: `the handler's result is not JSON-serializable: ${error.message}`,
        kind: 'invalid_output' } });
    }
  } catch (error) {
    return JSON.stringify({ type: 'response', id: frame.id, ok: false, error: describeError(error) });
  }
}

function kindOf(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

// What a module exports, for the message a script gets: `helper (object), VERSION (string)`.
function describeExports(loaded) {
  const seen = new Map();
  for (const [name, value] of Object.entries(loaded)) {
    if (name !== 'default') seen.set(name, kindOf(value));
  }
  const fallback = loaded.default;
  if (fallback && typeof fallback === 'object') {
    for (const [name, value] of Object.entries(fallback)) seen.set(name, kindOf(value));
  } else if (fallback !== undefined) {
    seen.set('default', kindOf(fallback));
  }
  if (seen.size === 0) return ['it exports nothing', []];
  const listed = [...seen].slice(0, 10).map(([name, kind]) => `${name} (${kind})`);
  const more = seen.size > 10 ? ` and ${seen.size - 10} more` : '';
  const callables = [...seen].filter(([, kind]) => kind === 'function').map(([name]) => name);
  return [`it exports ${listed.join(', ')}${more}`, callables];
}

// The deploy option that serves an export under another name: `--entry FILE:NAME`.
function entryHint(shown, callables) {
  const named = callables.filter((name) => name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name));
  if (named.length === 1) return `; to serve \`${named[0]}\` warm, deploy with --entry ${shown}:${named[0]}`;
  if (named.length > 1) return `; to serve one of them warm, deploy with --entry ${shown}:NAME (${named.slice(0, 5).join(', ')})`;
  return '';
}

const REGISTRY = Symbol.for('containerpub.registered-functions');
const FUNCTIONS_FRAMEWORK = '@google-cloud/functions-framework';

// Google Cloud Functions' `functions.http('name', fn)` registers instead of exporting: the
// framework's module is answered with one that keeps what is registered, for CommonJS and ESM
// alike, whether or not the package was uploaded. Installed only when the source names it.
function interceptFunctionsFramework(source) {
  if (!source.includes(FUNCTIONS_FRAMEWORK)) return;
  const registered = (globalThis[REGISTRY] = new Map());
  const framework = {
    http: (name, fn) => registered.set(name, fn),
    cloudEvent: (name, fn) => registered.set(name, fn),
    getFunction: (name) => registered.get(name),
  };
  const Module = require('module');
  const load = Module._load;
  Module._load = function interceptedLoad(request, ...rest) {
    return request === FUNCTIONS_FRAMEWORK ? framework : load.call(this, request, ...rest);
  };
  const shim = `data:text/javascript,${encodeURIComponent(`const r = globalThis[Symbol.for('containerpub.registered-functions')];
export const http = (n, f) => r.set(n, f); export const cloudEvent = (n, f) => r.set(n, f);
export const getFunction = (n) => r.get(n); export default { http, cloudEvent, getFunction };`)}`;
  const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(FUNCTIONS_FRAMEWORK)}) return { url: ${JSON.stringify(shim)}, shortCircuit: true };
  return next(specifier, context); }`;
  if (typeof Module.register === 'function') Module.register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}

// Workers-style code is written as ES modules in `.js` files with no `"type": "module"` and with
// extensionless imports (`./router`), because a bundler (wrangler, esbuild) reads it first. For
// such an entry, hooks make Node read the function's `.js` files that use `import`/`export` as ES
// modules and resolve a relative import without its extension as the bundler would. Installed
// only then: the hooks run on a thread of their own.
function esmWithoutType(entry, source) {
  if (!entry.endsWith('.js') || !/^\s*(import|export)\s/m.test(source)) return false;
  for (let dir = path.dirname(fs.realpathSync(entry)); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8')).type === undefined;
      } catch (_) {
        return true;
      }
    }
    if (path.dirname(dir) === dir) return true;
  }
}

function interceptBundlerModules(root) {
  const Module = require('module');
  if (typeof Module.register !== 'function') return;
  const hooks = `import { readFileSync, existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const root = ${JSON.stringify(root + path.sep)};
const inside = (url) => url.startsWith('file:') && fileURLToPath(url).startsWith(root);
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../');
    if (!relative || !context.parentURL || !inside(context.parentURL)) throw error;
    for (const suffix of ['.js', '.mjs', '/index.js', '/index.mjs']) {
      const candidate = new URL(specifier + suffix, context.parentURL);
      const file = fileURLToPath(candidate);
      if (existsSync(file) && statSync(file).isFile()) return { url: candidate.href, shortCircuit: true };
    }
    throw error;
  }
}
export async function load(url, context, next) {
  if (inside(url) && url.endsWith('.js')) {
    const source = readFileSync(fileURLToPath(url), 'utf8');
    if (/^\\s*(import|export)\\s/m.test(source)) return { format: 'module', source, shortCircuit: true };
  }
  return next(url, context);
}`;
  Module.register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}

// A CommonJS file whose function is a plain top-level declaration, exported by nothing
// (OpenWhisk's `function main(params)`): compiled once more with a line that exports it. Its top
// level runs a second time; nothing else reaches such a function.
function topLevelFunction(entry, source, names) {
  for (const name of names) {
    if (!new RegExp(`^(?:async\\s+)?function\\s*\\*?\\s*${name}\\s*\\(`, 'm').test(source)) continue;
    const Module = require('module');
    const filename = fs.realpathSync(entry);
    const compiled = new Module(filename, null);
    compiled.filename = filename;
    compiled.paths = Module._nodeModulePaths(path.dirname(filename));
    compiled._compile(`${source}\n;module.exports[${JSON.stringify(REGISTRY.description)}] = typeof ${name} === 'function' ? ${name} : undefined;`, filename);
    const found = compiled.exports[REGISTRY.description];
    if (typeof found === 'function') return [found, name];
  }
  return [null, null];
}

function kindOfFunction(fn) {
  return fn.constructor && fn.constructor.name === 'AsyncFunction' ? 'an async function' : 'a function';
}

// Finds what to call: a named export, a property of `module.exports` (or of a default export
// object), and, for the default name only, `module.exports` or `export default` itself, a
// Workers-style `export default { fetch }`, route handlers (`export function GET`), a Koa app, a
// function registered with Cloud Functions' framework, the only exported function, or OpenWhisk's
// top-level `main`. A name the deploy chose must match exactly (or be registered under it).
// Returns `{target, where, how, isDefault}` or `{target: null, where: exports, callables}`.
async function load(entry, name, source) {
  interceptFunctionsFramework(source);
  if (esmWithoutType(entry, source)) interceptBundlerModules(process.cwd());
  const loaded = await import(pathToFileURL(entry).href);
  // Modules Node loaded as CommonJS are in the require cache; ES modules never are.
  const commonJs = require.cache[fs.realpathSync(entry)] !== undefined;
  const fallback = loaded.default;
  const candidates = [
    [loaded[name], commonJs ? `\`exports.${name}\`` : `\`export ${name}\``, false],
    [fallback ? fallback[name] : undefined, commonJs ? `\`module.exports.${name}\`` : `\`export default { ${name} }\``, false],
  ];
  if (name === 'handler') {
    candidates.push([fallback, commonJs ? '`module.exports`' : '`export default`', true]);
  }
  const found = candidates.find(([candidate]) => typeof candidate === 'function');
  if (found) {
    const [target, where, isDefault] = found;
    return { target, where: `${where}, ${kindOfFunction(target)}`, how: 'function', isDefault };
  }
  const registered = globalThis[REGISTRY];
  if (registered && registered.has(name)) {
    return { target: registered.get(name), where: `\`functions.http('${name}', …)\``, how: 'registered' };
  }
  if (name === 'handler') {
    if (fallback && typeof fallback === 'object' && typeof fallback.fetch === 'function') {
      return { target: fallback, where: '`export default { fetch }`', how: 'fetch-object' };
    }
    if (fallback && typeof fallback === 'object' && typeof fallback.callback === 'function' && typeof fallback.use === 'function') {
      return { target: fallback.callback(), where: 'a Koa app (`module.exports = app`)', how: 'app-object' };
    }
    const { METHODS } = require(path.join(__dirname, 'node_shapes', 'fetch.cjs'));
    const methods = METHODS.filter((method) => typeof loaded[method] === 'function');
    if (methods.length) return { target: loaded, where: `\`export function ${methods.join('/')}\``, how: 'method-exports', methods };
    if (registered && registered.size === 1) {
      const [[registeredName, target]] = registered;
      return { target, where: `\`functions.http('${registeredName}', …)\`, the only function registered`, how: 'registered' };
    }
  }
  const [exportsSeen, callables] = describeExports(loaded);
  const named = callables.filter((callable) => callable !== 'default');
  if (name === 'handler' && named.length === 1) {
    const only = loaded[named[0]] || (fallback && fallback[named[0]]);
    if (typeof only === 'function') {
      return { target: only, where: `\`${named[0]}\`, the only exported function, ${kindOfFunction(only)}`, how: 'function' };
    }
  }
  if (commonJs && callables.length === 0) {
    const [target, topLevel] = topLevelFunction(entry, source, name === 'handler' ? ['handler', 'main'] : [name]);
    if (target) return { target, where: `the top-level \`function ${topLevel}\` (no export)`, how: 'function', topLevel };
  }
  return { target: null, where: exportsSeen, callables };
}

// The shapes each way of being found can be served in.
function shapeFits(how, shape) {
  if (how === 'fetch-object' || how === 'method-exports') return shape === 'fetch';
  if (how === 'registered' || how === 'app-object') return shape === 'node-http';
  return true;
}

const SHAPE_MODULES = {
  lambda: 'lambda.cjs',
  'lambda-v1': 'lambda.cjs',
  fetch: 'fetch.cjs',
  'node-http': 'node_http.cjs',
  openfaas: 'openfaas.cjs',
  knative: 'knative.cjs',
  appwrite: 'appwrite.cjs',
  fission: 'fission.cjs',
  openwhisk: 'openwhisk.cjs',
};

// The call of one request in `shape`.
function caller(shape, target) {
  if (shape === 'body') return (frame) => invokeBody(target, frame);
  const module = require(path.join(__dirname, 'node_shapes', SHAPE_MODULES[shape]));
  return (frame) => module.invoke(target, frame, shape);
}

async function main() {
  const entry = process.argv[2];
  const name = process.argv[3] || 'handler';
  const told = process.argv[4] || 'body';
  const shown = path.relative(process.cwd(), entry) || entry;
  let found;
  let source = '';
  try {
    source = fs.readFileSync(entry, 'utf8');
    found = await load(entry, name, source);
  } catch (error) {
    writeFrame({ type: 'load_error', error: describeError(error) });
    process.exit(1);
  }
  if (!found.target) {
    const hint = entryHint(shown, found.callables || []);
    writeFrame({ type: 'no_handler', message: `${shown} loaded without a callable \`${name}\` (${found.where})${hint}` });
    process.exit(0);
  }
  let shape = told;
  let reason;
  if (told === 'auto') {
    ({ shape, reason } = require(path.join(__dirname, 'node_shapes', 'detect.cjs')).detect(found, source, shown));
  }
  if (!(shape === 'body' || shape in SHAPE_MODULES) || !shapeFits(found.how, shape)) {
    const fitting = found.how === 'fetch-object' || found.how === 'method-exports' ? 'fetch' : 'node-http';
    const error = new TypeError(`${shown}: ${found.where} cannot be served in the ${shape} shape` +
      (shape in SHAPE_MODULES || shape === 'body' ? `; deploy with --shape ${fitting}, as its code expects` : `; a Node function's shape is one of body, ${Object.keys(SHAPE_MODULES).join(', ')}`));
    writeFrame({ type: 'load_error', error: describeError(error) });
    process.exit(1);
  }
  const call = caller(shape, found.target);
  writeFrame({ type: 'ready', runtime: 'node', handler: found.where, shape, shape_reason: reason });

  let pending = Buffer.alloc(0);
  let busy = Promise.resolve();
  // A pipe handle read through the event loop's epoll: `fs.createReadStream` would read it on
  // libuv's thread pool, one extra thread hand-off per request.
  const requests = new net.Socket({ fd: REQUEST_FD, readable: true, writable: false });
  requests.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      const frame = JSON.parse(pending.subarray(4, 4 + length).toString('utf8'));
      pending = pending.subarray(4 + length);
      busy = busy.then(async () => writeEncoded(await invoke(call, frame)));
    }
  });
  // The platform closed the request pipe: the worker is being retired.
  requests.on('end', () => busy.then(() => process.exit(0)));
}

main();
