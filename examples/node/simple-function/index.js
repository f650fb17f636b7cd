// The seed's simple function: greets whoever is named in the JSON body.
exports.handler = async (body) => {
  const name = (body && body.name) || 'world';
  console.log(`greeting ${name}`);
  return { message: `Hello, ${name}!` };
};
