import 'dart:io' as system;

const function = 'function';

@function
Future<String> handler(Map<String, dynamic> body) async {
  final result = await system.Process.run('cat', ['/etc/passwd']);
  return result.stdout as String;
}
