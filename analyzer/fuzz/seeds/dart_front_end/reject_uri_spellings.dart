import r'dart:' 'ff' "i";
import 'dart:\x6Dirrors';
import '''
dart:isolate''';
import "dart:\u{64}eveloper" as dev;

const function = 'function';

@function
int handler(Map<String, dynamic> body) => 1;
