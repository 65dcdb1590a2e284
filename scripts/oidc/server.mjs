// The OpenID provider that scripts/broker-up runs for the OIDC client-credentials
// tests (KIP-768): oidc-provider (npm, pinned in package-lock.json) over HTTPS with the
// test CA's server certificate, the client_credentials grant for one client (registered
// for HTTP Basic; oidc-provider 9.13 also accepts its secret in the body), RS256 JWT
// access tokens with a configurable lifetime, and a JWKS endpoint.
//
// Usage: node server.mjs   (configured by the environment; broker-up sets it)
//   OIDC_MODULES     node_modules folder holding oidc-provider (npm ci'd in the cache)
//   OIDC_PORT        port on 127.0.0.1
//   OIDC_CERT, OIDC_KEY          PEM server certificate and key (SAN IP:127.0.0.1)
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
//   OIDC_SCOPE       scope the clients may ask for (and get when they ask for none)
//   OIDC_AUDIENCE    the tokens' aud (the resource indicator, RFC 8707)
//   OIDC_TOKEN_TTL   access token lifetime in seconds
// Prints "ready ISSUER" on stdout once it listens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`oidc: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

// ESM resolves bare imports next to this file, not in the cache: import by path.
const entry = join(env('OIDC_MODULES'), 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const positive = (name) => {
  const n = Number(env(name));
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`oidc: ${name} must be a whole number > 0, got ${process.env[name]}`);
    process.exit(2);
  }
  return n;
};
const port = positive('OIDC_PORT');
const issuer = `https://127.0.0.1:${port}`;
const ttl = positive('OIDC_TOKEN_TTL');
const scope = env('OIDC_SCOPE');
const audience = env('OIDC_AUDIENCE');
const secret = env('OIDC_CLIENT_SECRET');

// A fresh signing key per start; verifiers read it from the JWKS endpoint.
const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
Object.assign(jwk, { kid: `kafka-conn-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope,
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  scopes: scope.split(' '),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    // Resource indicators make client_credentials tokens JWTs (the default is opaque).
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope,
        audience,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: { ClientCredentials: ttl },
});
// Say why a request failed in the log (the HTTP answer already carries error_description).
provider.on('grant.error', (_ctx, err) => {
  console.error(`oidc: grant error: ${err.name}: ${err.error_description || err.message}`);
});
provider.on('server_error', (_ctx, err) => console.error('oidc: server error', err));

const server = https.createServer(
  { cert: readFileSync(env('OIDC_CERT')), key: readFileSync(env('OIDC_KEY')) },
  provider.callback(),
);
server.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
// Exit at once: server.close() would wait for idle keep-alive connections.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
