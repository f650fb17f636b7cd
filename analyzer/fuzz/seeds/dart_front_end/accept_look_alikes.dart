// Process.run('rm', ['-rf', '/']) and exit(1) in a comment are not calls.
import 'dart:io' show HttpClient;
import 'src/process.dart';

const function = 'function';

/// Calls [Process.run] of our own class, not dart:io's.
@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body, Map<String, dynamic> request) async {
  final text = 'Process.run and exit(0) inside a string';
  final exit = body['exit'] as int? ?? 0;
  final client = HttpClient();
  client.close();
  return {'text': text, 'exit': exit, 'result': Process.run('job'), 'socket': body['Socket']};
}

int shadow(int exit, {required String Socket}) => exit + Socket.length;

class Holder {
  int exit() => 0;
  int call() => exit();
}
