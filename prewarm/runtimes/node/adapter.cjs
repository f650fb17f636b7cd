// ContainerPub warm-worker adapter for Node functions. See prewarm/PROTOCOL.md.
//
// Usage: node adapter.cjs ENTRY [FUNCTION]. Loads the entry once (CommonJS or ESM, by Node's own
// rules: .cjs/.mjs, package.json "type"), finds the function to call, writes a `ready` frame, then
// serves one request at a time: read a frame on fd 3, call the function, write the reply on fd 4.
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

// Runs one request; returns the reply frame's JSON text (encoded once: encoding is also the check
// that the result is JSON).
async function invoke(handler, frame) {
  const receivedAt = Date.now();
  try {
    const event = frame.event || {};
    let result = await handler(handlerBody(event), contextObject(frame, receivedAt));
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

// Finds the function to call: a named export, a property of `module.exports` (or of a default
// export object), and, for the default name only, `module.exports` or `export default` itself.
// A name the deploy chose must match exactly. Returns `[handler, what]` or `[null, exports]`.
async function load(entry, name) {
  const loaded = await import(pathToFileURL(entry).href);
  // Modules Node loaded as CommonJS are in the require cache; ES modules never are.
  const commonJs = require.cache[fs.realpathSync(entry)] !== undefined;
  const fallback = loaded.default;
  const candidates = [
    [loaded[name], commonJs ? `\`exports.${name}\`` : `\`export ${name}\``],
    [fallback ? fallback[name] : undefined, commonJs ? `\`module.exports.${name}\`` : `\`export default { ${name} }\``],
  ];
  if (name === 'handler') {
    candidates.push([fallback, commonJs ? '`module.exports`' : '`export default`']);
  }
  const found = candidates.find(([candidate]) => typeof candidate === 'function');
  if (found) {
    const [handler, where] = found;
    const kind = handler.constructor && handler.constructor.name === 'AsyncFunction' ? 'an async function' : 'a function';
    return [handler, `${where}, ${kind}`];
  }
  const [exportsSeen, callables] = describeExports(loaded);
  return [null, exportsSeen, callables];
}

async function main() {
  const entry = process.argv[2];
  const name = process.argv[3] || 'handler';
  const shown = path.relative(process.cwd(), entry) || entry;
  let handler;
  let where;
  let callables = [];
  try {
    [handler, where, callables = []] = await load(entry, name);
  } catch (error) {
    writeFrame({ type: 'load_error', error: describeError(error) });
    process.exit(1);
  }
  if (!handler) {
    const hint = entryHint(shown, callables);
    writeFrame({ type: 'no_handler', message: `${shown} loaded without a callable \`${name}\` (${where})${hint}` });
    process.exit(0);
  }
  writeFrame({ type: 'ready', runtime: 'node', handler: where });

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
      busy = busy.then(async () => writeEncoded(await invoke(handler, frame)));
    }
  });
  // The platform closed the request pipe: the worker is being retired.
  requests.on('end', () => busy.then(() => process.exit(0)));
}

main();
