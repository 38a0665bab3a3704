// Runs the OpenActive community's validators for tests/ecosystem/test_ecosystem.py, which reads the JSON printed.
//
//   node check.js models CACHE_DIR < items.json   each item's data through @openactive/data-model-validator
//   node check.js rpde FEED_URL                   the feed through @openactive/rpde-validator
//
// CACHE_DIR holds the remote documents the data-model validator would fetch (our context, the
// activity lists), laid out as its JSON loader caches them, so it runs with no network.
'use strict';

const fs = require('fs');
// The validator hashes its whole JSON-LD context (JSON.stringify + SHA-256) on every property lookup,
// about a second of CPU an item with a context of our size. The same context object gives the same
// answer, so lookups are memoised by the context object's identity, and the merged contexts by their
// input's: the validator's answers are unchanged (test_ecosystem checks the same failures either way).
const GraphHelper = require('@openactive/data-model-validator/src/helpers/graph');
const PropertyHelper = require('@openactive/data-model-validator/src/helpers/property');

const merged = new WeakMap();
const mergeContexts = GraphHelper.mergeContexts.bind(GraphHelper);
GraphHelper.mergeContexts = (contexts = []) => {
  if (typeof contexts !== 'object' || contexts === null) return mergeContexts(contexts);
  if (!merged.has(contexts)) merged.set(contexts, mergeContexts(contexts));
  return merged.get(contexts);
};

const lookups = new WeakMap();
const qualify = PropertyHelper.getFullyQualifiedProperty.bind(PropertyHelper);
PropertyHelper.getFullyQualifiedProperty = (property, version, contexts = []) => {
  const context = contexts && !Array.isArray(contexts) ? contexts['@context'] : null;
  if (typeof context !== 'object' || context === null || Object.keys(contexts).length !== 1) {
    return qualify(property, version, contexts);
  }
  if (!lookups.has(context)) lookups.set(context, new Map());
  const known = lookups.get(context);
  const key = `${version}\u0000${typeof property === 'string' ? property : JSON.stringify(property)}`;
  if (!known.has(key)) known.set(key, qualify(property, version, contexts));
  return known.get(key);
};
const { validate } = require('@openactive/data-model-validator');
const { RpdeValidator } = require('@openactive/rpde-validator');

function brief(error) {
  return {
    severity: error.severity,
    type: error.type,
    path: error.path,
    message: String(error.message || '').split('\n')[0].slice(0, 300),
  };
}

async function models(cacheDir) {
  const items = JSON.parse(fs.readFileSync(0, 'utf8'));
  const options = {
    loadRemoteJson: true,
    remoteJsonCachePath: cacheDir,
    remoteJsonCacheTimeToLive: 24 * 3600,
  };
  const results = [];
  for (const item of items) {
    const errors = await validate(item, options);
    results.push({ id: item['@id'], errors: errors.map(brief) });
  }
  return { results };
}

async function rpde(url) {
  const log = await RpdeValidator(url, { pageLimit: 50, timeoutMs: 10000 });
  const errors = log.pages.flatMap((page) => page.errors.map((error) => ({ page: page.url, ...brief(error) })));
  return { pages: log.pages.map((page) => page.url), errors };
}

const [command, argument] = process.argv.slice(2);
const run = { models, rpde }[command];
if (!run || !argument) {
  process.stderr.write('usage: node check.js models CACHE_DIR < items.json | node check.js rpde FEED_URL\n');
  process.exit(2);
}
run(argument).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  },
);
