import 'src/stub.dart' if (dart.library.io) 'dart:ffi' if (dart.library.html) 'src/web.dart';

const function = 'function';

@function
int handler(Map<String, dynamic> body) => 1;
