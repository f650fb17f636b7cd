// An HTTP function (the seed's http-function): fetches a URL with a timeout and reports what came
// back, or why nothing did. Call it with {"url": "https://…"} (or ?url=…), and optionally
// {"timeout_ms": 1500}.
//
// `HttpClient` from dart:io needs no dependency. The timeout stays below the platform's deadline
// (5 s by default): the function answers 504 itself, with a message, instead of being stopped.
import 'dart:async';
import 'dart:io';

const function = 'function';
const defaultTimeoutMs = 2000;

@function
Future<Map<String, dynamic>> handler(
    Map<String, dynamic> body, Map<String, dynamic> request) async {
  final query = request['query'] as Map<String, dynamic>? ?? {};
  final url = (body['url'] ?? query['url']) as String?;
  final uri = url == null ? null : Uri.tryParse(url);
  if (uri == null || !(uri.scheme == 'http' || uri.scheme == 'https')) {
    return {
      'statusCode': 400,
      'body': {'success': false, 'error': 'send {"url": "http://…" or "https://…"}'},
    };
  }
  final timeout = Duration(
      milliseconds: (body['timeout_ms'] as num?)?.toInt() ?? defaultTimeoutMs);
  final started = DateTime.now();
  final client = HttpClient()..connectionTimeout = timeout;
  try {
    final answer = await () async {
      final response = await (await client.getUrl(uri)).close();
      final bytes = await response.fold<int>(0, (n, chunk) => n + chunk.length);
      return {
        'success': true,
        'url': url,
        'status': response.statusCode,
        'contentType': response.headers.contentType?.toString(),
        'bodyLength': bytes,
        'elapsedMs': DateTime.now().difference(started).inMilliseconds,
      };
    }()
        .timeout(timeout);
    return answer;
  } on TimeoutException {
    stderr.writeln('timed out after ${timeout.inMilliseconds} ms: $url');
    return {
      'statusCode': 504,
      'body': {
        'success': false,
        'error': 'timeout',
        'message': 'no answer from $url within ${timeout.inMilliseconds} ms',
      },
    };
  } on IOException catch (error) {
    stderr.writeln('request failed: $url: $error');
    return {
      'statusCode': 502,
      'body': {'success': false, 'error': 'unreachable', 'message': '$url: $error'},
    };
  } finally {
    client.close(force: true);
  }
}
