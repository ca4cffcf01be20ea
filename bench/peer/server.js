// node-oidc-provider 9.x configured like authserver, for the comparison in bench/ (see bench/README.md).
//
// One process, the built-in in-memory adapter (its code, on a store without the 1,000-entry LRU cap
// — with the cap, W5's sessions and W6's rotated tokens evict live grants and every refresh fails),
// ES256 JWT access tokens for the API resource
// (RFC 8707 resource indicators with a default resource), refresh-token rotation, introspection,
// and a minimal interaction handler that verifies passwords with argon2id (m=19 MiB, t=2, p=1, the
// same parameters as authserver) so the sign-in flow costs the same hashing work on both sides.
//
// Configuration comes as JSON in $PEER_CONFIG:
//   {"port": 0, "issuer": "...", "api": "https://api.cmipro.example", "opaque_client": "...",
//    "clients": [oidc-provider client metadata...], "users": [{"username", "password"}]}
// It prints "listening <port>" once ready.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import { hash, verify } from '@node-rs/argon2';

const config = JSON.parse(process.env.PEER_CONFIG);
const API = config.api;
const API_SCOPES = 'read:stations read:levels read:alerts write:alerts';
const ARGON2 = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

function privateJwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg, use: 'sig' };
}

const users = new Map();
for (const user of config.users) {
  users.set(user.username, { accountId: randomBytes(16).toString('hex'), hash: await hash(user.password, ARGON2) });
}
const accountsById = new Map([...users].map(([username, u]) => [u.accountId, { username, ...u }]));

// The shape MemoryAdapter expects of its store (get / set with maxAge / delete), unbounded.
class ExpiringMap {
  #map = new Map();

  get(key) {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value, options) {
    this.#map.set(key, { value, expiresAt: options?.maxAge ? Date.now() + options.maxAge : Infinity });
  }

  delete(key) {
    this.#map.delete(key);
  }
}
const store = new ExpiringMap();

const provider = new Provider(config.issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients: config.clients,
  jwks: {
    keys: [
      privateJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      privateJwk('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'profile', 'email', ...API_SCOPES.split(' ')],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  async findAccount(ctx, id) {
    const account = accountsById.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: account.username, name: 'Bench User', email: `${account.username}@example.org`, email_verified: true };
      },
    };
  },
  routes: {
    authorization: '/authorize',
    token: '/token',
    jwks: '/jwks',
    introspection: '/introspect',
    userinfo: '/userinfo',
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // W8: DPoP-bound tokens (RFC 9449); public clients' refresh tokens are bound to the proof key.
    dPoP: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The opaque client gets no resource, hence an opaque (introspectable) access token.
      defaultResource: (ctx, client) => (client && client.clientId === config.opaque_client ? undefined : API),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: API_SCOPES,
        audience: API,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // First-party clients: no consent page (authserver's clients are first_party in the bench too).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(`openid profile email offline_access ${API_SCOPES}`);
    grant.addResourceScope(API, API_SCOPES);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: 900,
    ClientCredentials: 900,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 900,
    Session: 12 * 3600,
    Grant: 90 * 24 * 3600,
    RefreshToken: 14 * 24 * 3600,
  },
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><form method="post" action="/interaction/${escape(uid)}">
<input type="hidden" name="prompt" value="${escape(details.prompt.name)}"><!-- ${escape(JSON.stringify(details.prompt))} -->
<input name="username"><input name="password" type="password"><button>Sign in</button></form>`);
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const user = users.get(form.get('username') || '');
  const ok = await verify(user ? user.hash : accountsById.values().next().value.hash, form.get('password') || '');
  if (!user || !ok) {
    res.writeHead(401, { 'content-type': 'text/plain' });
    res.end('sign-in failed');
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.accountId } }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((error) => {
    console.error(error);
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('interaction error');
  });
});
server.keepAliveTimeout = 75_000;
server.listen(config.port || 0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
