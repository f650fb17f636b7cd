// A function with dependencies: deploy it as it is (no node_modules). The server installs
// lodash and uuid from package-lock.json with `npm ci`, in a confined builder, at deploy.
const _ = require('lodash');
const { v4: uuid } = require('uuid');

exports.handler = async (body) => ({
  id: uuid(),
  words: _.words(String(body.text ?? 'hello from containerpub')).map(_.capitalize),
  lodash: _.VERSION,
});
