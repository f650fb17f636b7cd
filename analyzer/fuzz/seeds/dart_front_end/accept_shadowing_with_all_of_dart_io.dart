import 'dart:io';

const function = 'function';

/// The library's own `Process` shadows dart:io's.
class Process {
  static String run(String job) => job;
}

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final exit = body.length;
  final results = [for (final Socket in ['a', 'b']) Socket.toUpperCase()];
  try {
    throw StateError('x');
  } catch (HttpServer) {
    print(HttpServer);
  }
  void local(int Link) => print(Link);
  local(exit);
  return {'ran': Process.run('job'), 'exit': exit, 'results': results, 'host': Platform.localHostname};
}
