import 'dart:io' as io;
import 'dart:io';

typedef Runner = io.Process;

const function = 'function';

@function
Future<Object?> handler(Map<String, dynamic> body) async {
  final run = io.Process.run;
  Function.apply(exit, [3]);
  return run('ls', []);
}
