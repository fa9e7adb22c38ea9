// The CommonJS consumer: require() for every package, import() for the other copy.
'use strict';
const smoke = require('./body.cjs');

const m = {
  core: require('@towerline/core'),
  retry: require('@towerline/retry'),
  reconnect: require('@towerline/reconnect'),
  config: require('@towerline/config'),
  tls: require('@towerline/tls'),
  ioredis: require('@towerline/ioredis'),
  pg: require('@towerline/pg'),
  grpc: require('@towerline/grpc'),
  otel: require('@towerline/otel'),
  testing: require('@towerline/testing'),
  'durable-streams': require('@towerline/durable-streams'),
};

(async () => {
  const other = {
    core: await import('@towerline/core'),
    config: await import('@towerline/config'),
  };
  await smoke(m, other, process.argv[2] ?? 'cjs');
})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
