// A CommonJS loader for the modules above: require() resolves paths relative to the module
// that calls it, as Node does for a package's own files.
var cache = Object.create(null);
function resolve(base, rel) {
  var parts = rel.charAt(0) === '.' ? base.split('/').slice(0, -1) : [];
  rel.replace(/\.js$/, '').split('/').forEach(function (p) {
    if (p === '..') {
      parts.pop();
    } else if (p !== '.' && p !== '') {
      parts.push(p);
    }
  });
  var id = parts.join('/');
  return !(id in defs) && (id + '/index') in defs ? id + '/index' : id;
}
function load(id) {
  if (id in cache) {
    return cache[id].exports;
  }
  if (!(id in defs)) {
    throw new Error('xterm.js module not found: ' + id);
  }
  var module = { exports: {} };
  cache[id] = module;
  defs[id].call(module.exports, module.exports, function (rel) {
    return load(resolve(id, rel));
  }, module);
  return module.exports;
}
window.OneboxXterm = load('xterm');
