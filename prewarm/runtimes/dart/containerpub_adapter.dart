// ContainerPub warm-worker adapter for Dart functions. See prewarm/PROTOCOL.md.
//
// A generated entry file imports the function's `main.dart` and this library, then calls
// `serve(handler)`. The adapter writes a `ready` frame and serves one request at a time: read a
// frame on fd 3, call the handler, write the reply on fd 4. stdout and stderr belong to the
// function: they are log pipes, never frames.
//
// The protocol descriptors are opened as `/dev/fd/N` through `RandomAccessFile`, whose `read`
// waits for data on a pipe; `File.openRead` is not used because its stream ends early on pipes.
// dart:io cannot adopt an inherited descriptor (every `File` is opened by path), so the pipes are
// opened again by path: in the sandbox the exec wrapper gives them to the function's uid first
// (prewarm/src/sandbox/enter.rs, `hand_over_pipes`), or this open would answer EACCES.
//
// Every I/O call below is written against the Dart VM's own code (runtime/bin/file.cc,
// runtime/bin/file_linux.cc); the comment beside each says what the VM does with it.
import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

// `Platform.environment` is read once from the process's environment (Platform::Environment).
String _descriptorPath(String variable, int fallback) {
  final configured = Platform.environment[variable];
  final descriptor = configured == null ? fallback : int.parse(configured);
  return '/dev/fd/$descriptor';
}

Future<Uint8List?> _readExactly(RandomAccessFile requests, int count) async {
  final builder = BytesBuilder(copy: false);
  while (builder.length < count) {
    // `read(n)` is File::Read, one `read(2)` of at most n bytes on the VM's I/O thread: on a pipe
    // it waits for data, may return fewer bytes than asked (hence the loop), and returns an
    // empty list at end of file (the platform closed the request pipe).
    final chunk = await requests.read(count - builder.length);
    if (chunk.isEmpty) {
      return null;
    }
    builder.add(chunk);
  }
  return builder.takeBytes();
}

Future<void> _writeFrame(RandomAccessFile responses, Object? message) async {
  final payload = utf8.encode(jsonEncode(message));
  final header = ByteData(4)..setUint32(0, payload.length, Endian.big);
  final frame = BytesBuilder(copy: false)
    ..add(header.buffer.asUint8List())
    ..add(payload);
  // `writeFrom` is File_WriteFrom → File::WriteFully: `write(2)` repeated until every byte is
  // written, so a frame larger than the pipe's buffer still goes out whole, in order.
  await responses.writeFrom(frame.takeBytes());
}

Map<String, Object?> _describeError(Object error, StackTrace? stack) {
  final described = <String, Object?>{
    'type': error.runtimeType.toString(),
    'message': error.toString(),
    'stack': stack?.toString(),
  };
  if (error is OutOfMemoryError) {
    described['kind'] = 'out_of_memory';
  }
  return described;
}

/// The `body` argument: the request body decoded as JSON, the raw text when it is not JSON (or
/// arrived as base64), `{}` when empty; and what it is, in words, for a refusal.
(Object?, String) _handlerBody(Map<String, dynamic> event) {
  final body = event['body'];
  if (body == null || body == '') {
    return (<String, dynamic>{}, 'an empty body');
  }
  if (event['body_is_base64'] == true) {
    return (body, 'a binary (base64) body');
  }
  try {
    final decoded = jsonDecode(body as String);
    final kind = decoded is Map
        ? 'a JSON object'
        : decoded is List
            ? 'a JSON array'
            : decoded is String
                ? 'a JSON string'
                : decoded == null
                    ? 'JSON null'
                    : 'a JSON ${decoded.runtimeType}';
    return (decoded, kind);
  } on FormatException {
    return (body, 'text that is not JSON');
  }
}

/// Whether the handler's first parameter can take [body]. A Dart handler says what it accepts
/// by its parameter's type: `Map<String, dynamic> body` takes JSON objects (and the empty
/// body's `{}`), `Object? body` or an untyped one takes anything. The handler is tested against
/// a function type for each kind of body JSON decodes to; `Never` stands for the `request`
/// parameter, which always receives a map.
bool _accepts(Function handler, bool withRequest, Object? body) {
  if (withRequest) {
    if (body is Map<String, dynamic>) return handler is Function(Map<String, dynamic>, Never);
    if (body is List<dynamic>) return handler is Function(List<dynamic>, Never);
    if (body is String) return handler is Function(String, Never);
    if (body is int) return handler is Function(int, Never);
    if (body is double) return handler is Function(double, Never);
    if (body is bool) return handler is Function(bool, Never);
    return handler is Function(Null, Never);
  }
  if (body is Map<String, dynamic>) return handler is Function(Map<String, dynamic>);
  if (body is List<dynamic>) return handler is Function(List<dynamic>);
  if (body is String) return handler is Function(String);
  if (body is int) return handler is Function(int);
  if (body is double) return handler is Function(double);
  if (body is bool) return handler is Function(bool);
  return handler is Function(Null);
}

/// The `request` argument: the request as received, plus what a Lambda context carries that
/// means something here, under Node's names. `deadline_ms` is the invocation's budget, counted
/// from the frame's arrival.
Map<String, dynamic> _requestObject(Map<String, dynamic> frame, Stopwatch sinceArrival) {
  final event = frame['event'] as Map<String, dynamic>;
  final budget = (frame['deadline_ms'] as num? ?? 0).toInt();
  final environment = Platform.environment;
  return <String, dynamic>{
    'method': event['method'],
    'path': event['path'],
    'query': event['query'] ?? <String, dynamic>{},
    'headers': event['headers'] ?? <String, dynamic>{},
    'body': event['body'],
    'isBase64Encoded': event['body_is_base64'] == true,
    'invocationId': frame['id'],
    'functionName': environment['FUNCTION_NAME'],
    'functionVersion': environment['FUNCTION_VERSION'],
    'memoryLimitInMB': int.tryParse(environment['FUNCTION_MAX_MEMORY_MB'] ?? '') ?? 0,
    'getRemainingTimeInMillis': () {
      final left = budget - sinceArrival.elapsedMilliseconds;
      return left > 0 ? left : 0;
    },
  };
}

/// A reply for a call that did not produce a result, with the `kind` the platform maps to a
/// status (PROTOCOL.md).
Map<String, Object?> _refusal(Object? id, String type, String message, String kind) => <String, Object?>{
      'type': 'response',
      'id': id,
      'ok': false,
      'error': <String, Object?>{'type': type, 'message': message, 'kind': kind},
    };

Future<Map<String, Object?>> _invoke(Function handler, Map<String, dynamic> frame) async {
  final sinceArrival = Stopwatch()..start();
  final id = frame['id'];
  final withRequest = handler is Function(Never, Never);
  final (body, described) = _handlerBody(frame['event'] as Map<String, dynamic>);
  if (!_accepts(handler, withRequest, body)) {
    // Answered 400 invalid_body: the caller sent what the handler does not take.
    return _refusal(
        id,
        'ArgumentError',
        "the handler's body parameter does not take $described; send what it declares (a JSON "
            'object for `Map<String, dynamic> body`), or declare `Object? body` to take any body',
        'invalid_body');
  }
  final completer = Completer<Map<String, Object?>>();
  runZonedGuarded(() async {
    final dynamic callable = handler;
    final Object? called = withRequest ? callable(body, _requestObject(frame, sinceArrival)) : callable(body);
    final result = called is Future ? await called : called;
    String encoded;
    try {
      encoded = jsonEncode(result);
    } on JsonUnsupportedObjectError catch (error) {
      // Answered 502 invalid_output: the function returned what no HTTP answer can carry.
      if (!completer.isCompleted) {
        completer.complete(
            _refusal(id, 'TypeError', "the handler's result is not JSON-serializable: $error", 'invalid_output'));
      }
      return;
    }
    if (!completer.isCompleted) {
      completer.complete(<String, Object?>{
        'type': 'response',
        'id': id,
        'ok': true,
        'result': jsonDecode(encoded),
      });
    }
  }, (Object error, StackTrace stack) {
    if (!completer.isCompleted) {
      completer.complete(<String, Object?>{
        'type': 'response',
        'id': id,
        'ok': false,
        'error': _describeError(error, stack),
      });
    }
  });
  return completer.future;
}

// `stdout`/`stderr` are `_StdSink`s over fds 1 and 2 (File::OpenStdio, no open or seek); their
// `flush` completes when what was added has been handed to `write(2)`.
Future<void> _flushOutput() async {
  for (final sink in <IOSink>[stdout, stderr]) {
    try {
      await sink.flush();
    } on Object {
      // A sink busy with the function's own addStream cannot be flushed; its bytes still arrive.
    }
  }
}

/// Serves requests with [handler] until the platform closes the request pipe.
Future<void> serve(Function handler) async {
  // File::Open first `stat`s the path, following the /dev/fd link: a FIFO is accepted (only
  // directories and other non-file types are refused). `FileMode.read` is `O_RDONLY|O_CLOEXEC`
  // with no seek; opening /dev/fd/N re-opens the pipe itself.
  final requests =
      await File(_descriptorPath('CONTAINERPUB_REQUEST_FD', 3)).open(mode: FileMode.read);
  // Not `writeOnlyAppend`: DartModeToFileMode maps it to kWriteOnly without kTruncate, and
  // File::Open then `lseek(fd, 0, SEEK_END)`s and fails the open when the seek fails — which it
  // always does on a pipe (ESPIPE), so the worker would die before its `ready` frame.
  // `writeOnly` is kWriteOnlyTruncate: `O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC` and no seek;
  // `O_TRUNC` is ignored for a FIFO and `O_CREAT` does nothing to an existing one.
  final responses = await File(_descriptorPath('CONTAINERPUB_RESPONSE_FD', 4))
      .open(mode: FileMode.writeOnly);
  await _writeFrame(responses, <String, Object?>{'type': 'ready', 'runtime': 'dart'});
  while (true) {
    final header = await _readExactly(requests, 4);
    if (header == null) {
      break;
    }
    final length = ByteData.sublistView(header).getUint32(0, Endian.big);
    final payload = await _readExactly(requests, length);
    if (payload == null) {
      break;
    }
    final frame = jsonDecode(utf8.decode(payload)) as Map<String, dynamic>;
    final reply = await _invoke(handler, frame);
    await _flushOutput();
    await _writeFrame(responses, reply);
  }
  // File::Close: `close(2)` of the descriptors this process opened; the inherited fds 3 and 4
  // are separate descriptors and close when the process exits.
  await responses.close();
  await requests.close();
}
