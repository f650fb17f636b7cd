// ContainerPub warm-worker adapter for Node functions. See prewarm/PROTOCOL.md.
//
// Loads the function once (`index.js`, CommonJS or ESM, exporting `handler`), writes a `ready` frame,
// then serves one request at a time: read a frame on fd 3, call the handler, write the reply on fd 4.
// stdout and stderr belong to the function: they are log pipes, never frames.
'use strict';

const fs = require('fs');
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

function writeFrame(message) {
  const payload = Buffer.from(JSON.stringify(message), 'utf8');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length, 0);
  writeAll(Buffer.concat([header, payload]));
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

function requestObject(event) {
  return {
    method: event.method,
    path: event.path,
    query: event.query || {},
    headers: event.headers || {},
    body: event.body === undefined ? null : event.body,
    isBase64Encoded: Boolean(event.body_is_base64),
  };
}

async function invoke(handler, frame) {
  try {
    const event = frame.event || {};
    let result = await handler(handlerBody(event), requestObject(event));
    if (result === undefined) result = null;
    let encoded;
    try {
      encoded = JSON.stringify({ type: 'response', id: frame.id, ok: true, result });
    } catch (error) {
      return { type: 'response', id: frame.id, ok: false, error: {
        type: 'TypeError', message: `the handler's result is not JSON-serializable: ${error.message}` } };
    }
    return JSON.parse(encoded);
  } catch (error) {
    return { type: 'response', id: frame.id, ok: false, error: describeError(error) };
  }
}

async function load(entry) {
  const loaded = await import(pathToFileURL(entry).href);
  const candidates = [loaded.handler, loaded.default && loaded.default.handler, loaded.default];
  const handler = candidates.find((candidate) => typeof candidate === 'function');
  if (!handler) throw new TypeError(`${entry} does not export a function named handler`);
  return handler;
}

async function main() {
  const entry = process.argv[2];
  let handler;
  try {
    handler = await load(entry);
  } catch (error) {
    writeFrame({ type: 'load_error', error: describeError(error) });
    process.exit(1);
  }
  writeFrame({ type: 'ready', runtime: 'node' });

  let pending = Buffer.alloc(0);
  let busy = Promise.resolve();
  const requests = fs.createReadStream(null, { fd: REQUEST_FD, highWaterMark: 64 * 1024 });
  requests.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      const frame = JSON.parse(pending.subarray(4, 4 + length).toString('utf8'));
      pending = pending.subarray(4 + length);
      busy = busy.then(async () => writeFrame(await invoke(handler, frame)));
    }
  });
  // The platform closed the request pipe: the worker is being retired.
  requests.on('end', () => busy.then(() => process.exit(0)));
}

main();
