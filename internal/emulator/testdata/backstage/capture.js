// Captures what the request validation of @backstage/plugin-notifications-backend
// 0.6.11 answers: its router is createOpenApiRouter() of
// @backstage/backend-openapi-utils 0.7.4, i.e. express.json(), then
// express-openapi-validator 5 with these options, then every error turned
// into an InputError (400). For each case of validation.json (name, path,
// contentType, body) it records status and message; see ../../README.md
// ("Backstage notifications").
//   npm install express@4.22 express-openapi-validator@5 express-promise-router@4 @backstage/errors@1
//   node capture.js spec.json validation.json > validation.new.json
// spec.json is the `spec` exported by dist/schema/openapi/generated/router.cjs.js
// of the npm package @backstage/plugin-notifications-backend@0.6.11 (npm pack;
// load that file with its require of @backstage/backend-openapi-utils stubbed
// and write JSON.stringify(spec)).
const http = require('http');
const express = require('express');
const Router = require('express-promise-router');
const OpenApiValidator = require('express-openapi-validator');
const errors = require('@backstage/errors');
const [specPath, casesPath] = process.argv.slice(2);
const spec = require(require('path').resolve(specPath));
const cases = require(require('path').resolve(casesPath));
const app = express();
const router = Router();
router.use([express.json()]);
router.use(OpenApiValidator.middleware({
  validateRequests: { coerceTypes: false, allowUnknownQueryParameters: false },
  useRequestUrl: true, ignoreUndocumented: true, validateResponses: false, apiSpec: spec,
}));
router.use((error, _, _2, next) => next(new errors.InputError(error.message)));
router.post('/notifications', async (req, res) => { res.json({}); });
router.post('/', async (req, res) => { res.json({}); });
app.use('/api/notifications', router);
app.use((error, req, res, next) => {
  res.status(error.name === 'InputError' ? 400 : 500).json({ error: errors.serializeError(error) });
});
const srv = app.listen(0, '127.0.0.1', async () => {
  const port = srv.address().port;
  const out = [];
  for (const c of cases) {
    const headers = {};
    if (c.contentType !== undefined) headers['Content-Type'] = c.contentType;
    const r = await fetch(`http://127.0.0.1:${port}/api/notifications${c.path}`, { method: 'POST', headers, body: Buffer.from(c.body) });
    const j = await r.json();
    out.push({ name: c.name, path: c.path, contentType: c.contentType, body: c.body, status: r.status, message: j.error ? j.error.message : '' });
  }
  console.log(JSON.stringify(out, null, 1));
  srv.close();
});
