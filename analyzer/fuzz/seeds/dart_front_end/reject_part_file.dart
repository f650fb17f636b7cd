import 'dart:io';

part 'src/helpers.dart';

const function = 'function';

@function
int handler(Map<String, dynamic> body) => stop(body['code'] as int);
